package healthcheck

import "sort"

func sortStatus(s []ProbeStatus) {
	sort.Slice(s, func(i, j int) bool { return s[i].Key < s[j].Key })
}
