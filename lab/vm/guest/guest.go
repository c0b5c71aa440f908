// Package guest is the contract between the lab VM's host side (package
// lab/vm) and its init (lab/vminit): where things are in the initramfs, the
// config format and the exit marker. It is tiny on purpose, so vminit builds
// fast and small.
package guest

// Paths in the initramfs.
const (
	// ConfigPath holds the JSON Config that vminit reads.
	ConfigPath = "/haldir-vm/config.json"
	// InitPath is where vminit lives; the kernel runs /init.
	InitPath = "/init"
	// ModulesDir holds the modules, named NNN-name.ko in load order.
	ModulesDir = "/haldir-vm/modules"
	// InVMEnv is set in the guest command's environment, so a test binary
	// knows it already runs inside the VM.
	InVMEnv = "HALDIR_LAB_IN_VM"
	// ExitMarker starts the line vminit prints last: marker, nonce, status.
	ExitMarker = "HALDIR-VM-EXIT"
)

// Config tells vminit what to do; the host writes it into the initramfs.
type Config struct {
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Modules []string `json:"modules"` // guest paths, in load order
	// Nonce makes the exit marker impossible to fake from the command's
	// own output by accident.
	Nonce string `json:"nonce"`
}
