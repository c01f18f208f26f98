//go:build windows

package postmortem

import (
	"math"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The Restart Manager (rstrtmgr.dll) is how Windows itself answers "which
// program has this file open" (Explorer's "file in use"); x/sys does not
// wrap it.
var (
	rstrtmgr           = windows.NewLazySystemDLL("rstrtmgr.dll")
	procRmStartSession = rstrtmgr.NewProc("RmStartSession")
	procRmRegisterRes  = rstrtmgr.NewProc("RmRegisterResources")
	procRmGetList      = rstrtmgr.NewProc("RmGetList")
	procRmEndSession   = rstrtmgr.NewProc("RmEndSession")
)

const (
	errorMoreData         = uintptr(windows.ERROR_MORE_DATA)
	rmSessionKeyLen       = 32 // CCH_RM_SESSION_KEY
	rmMaxAppName          = 255
	rmMaxSvcName          = 63
	rmMaxProcessesToQuery = 64
)

// rmProcessInfo is RM_PROCESS_INFO.
type rmProcessInfo struct {
	PID              uint32
	StartTime        windows.Filetime
	AppName          [rmMaxAppName + 1]uint16
	ServiceShortName [rmMaxSvcName + 1]uint16
	AppType          uint32
	AppStatus        uint32
	TSSessionID      uint32
	Restartable      int32
}

// openers asks the Restart Manager for the processes that have path open.
func openers(path string) []int {
	abs, err := filepath.Abs(path)
	if err != nil || rstrtmgr.Load() != nil {
		return nil
	}
	var session uint32
	key := make([]uint16, rmSessionKeyLen+1)
	if r, _, _ := procRmStartSession.Call(uintptr(unsafe.Pointer(&session)), 0, uintptr(unsafe.Pointer(&key[0]))); r != 0 {
		return nil
	}
	defer procRmEndSession.Call(uintptr(session))
	name, err := windows.UTF16PtrFromString(abs)
	if err != nil {
		return nil
	}
	if r, _, _ := procRmRegisterRes.Call(uintptr(session), 1, uintptr(unsafe.Pointer(&name)), 0, 0, 0, 0); r != 0 {
		return nil
	}
	infos := make([]rmProcessInfo, rmMaxProcessesToQuery)
	var needed, n uint32
	var reasons uint32
	n = uint32(len(infos))
	r, _, _ := procRmGetList.Call(uintptr(session), uintptr(unsafe.Pointer(&needed)), uintptr(unsafe.Pointer(&n)),
		uintptr(unsafe.Pointer(&infos[0])), uintptr(unsafe.Pointer(&reasons)))
	if r != 0 && r != errorMoreData {
		return nil
	}
	if n > uint32(len(infos)) {
		n = uint32(len(infos))
	}
	var pids []int
	for _, info := range infos[:n] {
		pids = append(pids, int(info.PID))
	}
	return pids
}

// commandName is the base name of a process's executable without ".exe"
// ("dcworker"), like Linux's /proc/PID/comm; "" if it cannot be read.
func commandName(pid int) string {
	if pid <= 0 || pid > math.MaxUint32 {
		return ""
	}
	return imageName(uint32(pid))
}

// imageName is commandName for a Windows process ID.
func imageName(pid uint32) string {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return ""
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_LONG_PATH)
	size := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &size); err != nil {
		return ""
	}
	base := filepath.Base(windows.UTF16ToString(buf[:size]))
	if ext := filepath.Ext(base); strings.EqualFold(ext, ".exe") {
		base = base[:len(base)-len(ext)]
	}
	return base
}
