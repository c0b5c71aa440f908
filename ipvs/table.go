package ipvs

// TableReader reads the kernel's services and their destinations (a
// Kernel does).
type TableReader interface {
	GetServices() ([]ServiceInfo, error)
	GetDestinations(svc ServiceKey) ([]DestInfo, error)
}

// ReadTable reads every service and, in the same order, its destinations
// with their counters: the whole table, for those who report on it
// (metrics, the connection counts a director gossips).
func ReadTable(r TableReader) ([]ServiceInfo, [][]DestInfo, error) {
	svcs, err := r.GetServices()
	if err != nil {
		return nil, nil, err
	}
	dests := make([][]DestInfo, len(svcs))
	for i, s := range svcs {
		if dests[i], err = r.GetDestinations(s.Key); err != nil {
			return nil, nil, err
		}
	}
	return svcs, dests, nil
}
