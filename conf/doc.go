// Package conf defines haldir's TOML configuration: the schema for the whole
// product, the defaults (applied in one place, defaults.go) and a strict
// loader that reports every problem at once with its key path and line.
package conf
