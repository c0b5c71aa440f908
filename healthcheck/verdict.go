package healthcheck

// verdict turns a stream of results into a debounced up/down state: rise
// consecutive successes bring a down target up, fall consecutive failures
// bring an up target down. It is pure logic, so flapping sequences can be
// tested without clocks or sockets.
type verdict struct {
	up     bool
	weight int
	rise   int
	fall   int
	succ   int // consecutive successes while down
	fails  int // consecutive failures while up
}

func newVerdict(initialUp bool, rise, fall int) verdict {
	if rise < 1 {
		rise = 1
	}
	if fall < 1 {
		fall = 1
	}
	return verdict{up: initialUp, weight: WeightConfigured, rise: rise, fall: fall}
}

// observe feeds one result and reports whether the verdict changed: up/down
// flipped, or the weight changed while up (an exec check's dynamic weight
// applies at once, as keepalived's misc_dynamic does).
func (v *verdict) observe(r Result) bool {
	if v.up {
		if !r.Up {
			v.fails++
			if v.fails >= v.fall {
				v.up, v.fails, v.succ = false, 0, 0
				return true
			}
			return false
		}
		v.fails = 0
		if r.Weight != v.weight {
			v.weight = r.Weight
			return true
		}
		return false
	}
	if !r.Up {
		v.succ = 0
		return false
	}
	v.succ++
	if v.succ >= v.rise {
		v.up, v.succ, v.fails, v.weight = true, 0, 0, r.Weight
		return true
	}
	return false
}

// retrying reports whether the target is up but has failed at least once
// without yet reaching fall: the window where retry_delay applies.
func (v *verdict) retrying() bool { return v.up && v.fails > 0 }
