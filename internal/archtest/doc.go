// Package archtest holds no code, only a test: it checks haldir's import
// graph against the layout the README describes (no product package
// depends on the test lab or on test helpers, ipvs stands alone, director
// knows nothing of VRRP, conf knows no component), so that a wrong import
// fails CI instead of slowly eroding the layout.
package archtest
