// Package storagefault is the storage-fault suite: real worker processes
// against a real tracker on loopback (trackertest), with real faults under
// their journals, checked from the tracker's side and the journals'.
//
// The workers are dcworker (running a shell command per job) and goworker
// (./goworker, a Go program written against package client). The faults:
//
//   - TestFullDisk: both journals on one small tmpfs that fills while each
//     worker works through its 120 jobs; then the tmpfs is remounted larger
//     (mount -o remount,size=...). dcworker sees the journal's own limit
//     (journal.Options.MinFree: ErrFull before the disk is full), goworker
//     runs without it (-min-free -1) and meets the kernel's ENOSPC.
//   - TestReadOnlyDisk: the journal's file system is made read-only under a
//     running dcworker, then read-write again. A plain `mount -o remount,ro`
//     is refused (EBUSY) while a process has a file open for writing there,
//     as a journal always is, so the test does what a kernel does on a disk
//     error: an ext4 file system on a loop device, mounted errors=remount-ro,
//     is switched read-only at once (/sys/fs/ext4/DEV/trigger_fs_error);
//     the operator's cure follows: once the worker has let go of the file
//     (its journal stopped, it reopens it on each retry), unmount, e2fsck,
//     mount again.
//   - TestFsyncEIO: dcworker under strace -e inject=fdatasync:error=EIO:when=N,
//     filtered to the journal's path (-P), for several N; one of them must
//     hit the commit of a completion (the log then says the output is held).
//     strace counts the calls of each thread, so a run sees one to a few
//     failures.
//   - TestJournalDeadline: dcworker's disk stays full past
//     --journal-deadline: it drains and exits 4; started again once there is
//     space, it finishes every job.
//   - TestCompactionEIO: goworker compacting its journal every few jobs
//     (journal.DB.Compact, as the journal's flusher does on a large file)
//     under strace injecting EIO into the fdatasync of the compaction's new
//     file (-P JOURNAL.compact).
//
// After each: every job was completed exactly once at the tracker, with the
// output the command computes ("done:" + input); no output was lost; no
// process printed a panic; the workers exited by themselves (exit 0: they
// recovered without a restart); the number of journal write attempts stays
// within what the retry schedule allows (1 s doubling to 30 s: no spinning);
// and `dcjournal verify` passes on every journal.
//
// Each test prints a line of figures ("storagefault: TestX: ...": jobs,
// write attempts while the journal could not be written and their rate,
// how long recovery took, wall time); go test -v shows them, and
// STORAGEFAULT_FIGURES=FILE appends them to FILE. STORAGEFAULT_LOGS=DIR
// keeps the whole output of every process in DIR.
//
// The suite needs root (mount, strace's ptrace of its children) and strace.
// Without them it skips, saying why, except when CI=true: CI runs as root,
// so there a missing piece fails the suite instead.
package storagefault
