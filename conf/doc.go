// Package conf defines haldir's TOML configuration: the schema for the whole
// product, the defaults (applied in one place, defaults.go), a strict
// loader that reports every problem at once with its key path and line, and
// Compile, which turns a valid file into the typed specs (Spec) that the
// components take, so that none of them parses or defaults it again.
package conf
