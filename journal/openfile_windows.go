package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"unsafe"
)

// Windows ignores Unix modes (0600 only clears the read-only attribute), so
// a new journal would inherit its folder's ACL, which outside the user's
// profile often lets every user read it. openFile gives a journal it creates
// a protected DACL instead: full access for the current user and SYSTEM
// (Windows' root), nobody else, no inherited entries. An existing file keeps
// its ACL, as an existing Unix file keeps its mode. Only the standard
// library is used (advapi32 through syscall): journal imports nothing else.
var (
	advapi32                 = syscall.NewLazyDLL("advapi32.dll") // a KnownDLL: always system32's
	procStringToSD           = advapi32.NewProc("ConvertStringSecurityDescriptorToSecurityDescriptorW")
	procGetSecurityDescDacl  = advapi32.NewProc("GetSecurityDescriptorDacl")
	procSetNamedSecurityInfo = advapi32.NewProc("SetNamedSecurityInfoW")
)

const (
	sddlRevision1                    = 1
	seFileObject                     = 1
	daclSecurityInformation          = 0x4
	protectedDaclSecurityInformation = 0x80000000
	errorInvalidFunction             = syscall.Errno(1)
	errorNotSupported                = syscall.Errno(50)
)

func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	created := false
	if flag&os.O_CREATE != 0 {
		_, err := os.Lstat(name)
		created = errors.Is(err, fs.ErrNotExist)
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil || !created {
		return f, err
	}
	if err := restrictToOwner(name); err != nil {
		f.Close()
		os.Remove(name)
		return nil, fmt.Errorf("restrict %s to its owner: %w", name, err)
	}
	return f, nil
}

// restrictToOwner sets name's DACL to the current user and SYSTEM only. A
// file system without ACLs (FAT, exFAT) has nothing to restrict.
func restrictToOwner(name string) error {
	sddl, err := ownerOnlySDDL()
	if err != nil {
		return err
	}
	sddl16, err := syscall.UTF16PtrFromString(sddl)
	if err != nil {
		return err
	}
	var sd uintptr
	if r, _, e := procStringToSD.Call(uintptr(unsafe.Pointer(sddl16)), sddlRevision1, uintptr(unsafe.Pointer(&sd)), 0); r == 0 {
		return fmt.Errorf("security descriptor %s: %w", sddl, e)
	}
	defer syscall.LocalFree(syscall.Handle(sd))
	var present, defaulted int32
	var dacl uintptr
	if r, _, e := procGetSecurityDescDacl.Call(sd, uintptr(unsafe.Pointer(&present)), uintptr(unsafe.Pointer(&dacl)), uintptr(unsafe.Pointer(&defaulted))); r == 0 {
		return fmt.Errorf("security descriptor's DACL: %w", e)
	}
	name16, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return err
	}
	r, _, _ := procSetNamedSecurityInfo.Call(uintptr(unsafe.Pointer(name16)), seFileObject,
		daclSecurityInformation|protectedDaclSecurityInformation, 0, 0, dacl, 0)
	switch e := syscall.Errno(r); e {
	case 0, errorNotSupported, errorInvalidFunction:
		return nil
	default:
		return e
	}
}

// ownerOnlySDDL is the DACL, in SDDL, that restrictToOwner sets: protected
// (P), full access (FA) for the current user's SID and for SYSTEM (SY).
func ownerOnlySDDL() (string, error) {
	tok, err := syscall.OpenCurrentProcessToken()
	if err != nil {
		return "", err
	}
	defer tok.Close()
	user, err := tok.GetTokenUser()
	if err != nil {
		return "", err
	}
	sid, err := user.User.Sid.String()
	if err != nil {
		return "", err
	}
	return "D:P(A;;FA;;;" + sid + ")(A;;FA;;;SY)", nil
}
