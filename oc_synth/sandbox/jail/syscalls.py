"""A seccomp filter for every program step: the system calls a sandboxed program has no business making.

Built with libseccomp's own Python binding (Debian's ``python3-seccomp``, the ``seccomp`` module of the system
interpreter that runs the zygotes), once per zygote; each step loads it after dropping privileges (``no_new_privs``
is set, so no capability is needed). Stdlib + that module only.

Everything not listed is allowed (a deny list: compilers, JVMs and V8 make too many different calls for an allow
list to stay right across toolchain versions). Denied calls fail with EPERM (ENOSYS for the two whose absence
libraries already handle: ``clone3``, whose flags a filter cannot read, makes glibc fall back to ``clone``; io_uring
makes libuv fall back to its thread pool). Calls made through a foreign ABI (i386, x32) kill the process.
"""

import errno

# name -> why it is denied (the docs list the same table)
DENIED = {
    "unshare": "new namespaces (a user namespace hands out capabilities inside it)",
    "setns": "joining other namespaces",
    "mount": "mount table changes", "umount2": "mount table changes", "pivot_root": "root changes",
    "chroot": "root changes", "fsopen": "new mount API", "fsconfig": "new mount API", "fsmount": "new mount API",
    "fspick": "new mount API", "move_mount": "new mount API", "open_tree": "new mount API",
    "mount_setattr": "new mount API",
    "ptrace": "inspecting other processes", "process_vm_readv": "reading other processes' memory",
    "process_vm_writev": "writing other processes' memory", "kcmp": "comparing other processes' kernel state",
    "pidfd_getfd": "stealing other processes' file descriptors",
    "bpf": "kernel programs", "perf_event_open": "performance counters (a kernel attack surface)",
    "userfaultfd": "kernel race exploitation aid",
    "add_key": "kernel keyrings (shared by every program of a uid)", "request_key": "kernel keyrings",
    "keyctl": "kernel keyrings",
    "init_module": "kernel modules", "finit_module": "kernel modules", "delete_module": "kernel modules",
    "kexec_load": "replacing the kernel", "kexec_file_load": "replacing the kernel", "reboot": "rebooting",
    "swapon": "swap", "swapoff": "swap", "acct": "process accounting", "quotactl": "disk quotas",
    "open_by_handle_at": "opening host files by handle", "name_to_handle_at": "file handles",
    "iopl": "I/O ports", "ioperm": "I/O ports", "syslog": "the kernel log",
    "settimeofday": "the host clock", "clock_settime": "the host clock", "clock_adjtime": "the host clock",
    "adjtimex": "the host clock", "lookup_dcookie": "kernel profiling", "vhangup": "terminals",
    "personality": "execution domains (ASLR off)", "io_uring_setup": "io_uring (a kernel attack surface)",
    "io_uring_enter": "io_uring", "io_uring_register": "io_uring", "clone3": "clone with unreadable flags",
}
_ENOSYS = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"}
# clone(2) stays allowed (threads, fork) unless its flags ask for a new namespace.
CLONE_NAMESPACE_FLAGS = (0x10000000, 0x00020000, 0x40000000, 0x20000000, 0x08000000, 0x04000000, 0x02000000,
                         0x00000080)  # USER, NS, NET, PID, IPC, UTS, CGROUP, TIME


def build_filter():
    """The filter object (``load()`` installs it in the calling process), or raise ImportError/OSError."""
    import seccomp

    f = seccomp.SyscallFilter(seccomp.ALLOW)
    # Keep the host's speculative-store-bypass setting: by default the kernel forces the SSB mitigation on every
    # filtered process, which slows it down and isolates nothing the namespaces do not (runc does the same).
    f.set_attr(seccomp.Attr.CTL_SSB, 1)
    for name in DENIED:
        try:
            f.add_rule(seccomp.ERRNO(errno.ENOSYS if name in _ENOSYS else errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):  # a call this kernel/arch does not have: nothing to deny
            pass
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    return f


def try_build_filter():
    """(filter, None) or (None, why it is unavailable)."""
    import sys

    added = [d for d in ("/usr/lib/python3/dist-packages",) if d not in sys.path]
    sys.path.extend(added)  # Debian installs the binding there; -I -S leaves it off sys.path
    try:
        return build_filter(), None
    except ImportError:
        return None, "the seccomp module is missing (Debian: apt-get install python3-seccomp)"
    except Exception as e:  # noqa: BLE001 - reported to the host, which warns loudly
        return None, f"{type(e).__name__}: {e}"
    finally:
        for d in added:
            sys.path.remove(d)
