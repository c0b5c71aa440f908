// Package control serves haldir's control socket: a unix socket (mode 0600)
// with a small JSON API that `haldir status` and `haldir reload` use, and
// the types of the status it reports.
package control
