"""Linux isolation for the zygote: namespaces, a minimal read-only root, privilege drop, rlimits. Stdlib only.

``enter_view(spec)`` is called once per zygote, as root, before any untrusted code exists:

1. ``unshare(NEWNS | NEWNET)``: a private mount table and an empty network namespace (loopback down, no routes),
   shared by every program this zygote runs (one at a time; a program's processes are all dead before the next).
2. A tmpfs becomes the new root; only the paths in ``spec["binds"]`` (interpreter, stdlib, toolchain) are
   bind-mounted into it, read-only, nosuid, at their host paths; ``/etc`` holds a few generated files; ``/dev`` only
   null/zero/full/random/urandom; ``/tmp`` is a size-limited tmpfs owned by the slot's uid (the work dir).
3. ``pivot_root`` + detach of the old root: nothing else of the host is reachable by path any more.

Each program then gets its own PID and IPC namespaces (``supervisor``) and runs as the slot's unprivileged uid with
no supplementary groups, ``no_new_privs`` and rlimits (``drop_to``).
"""

import ctypes
import os
import platform
import resource

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

PR_SET_NO_NEW_PRIVS = 38

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}

# Where the new root is assembled before pivot_root: a host directory that the private tmpfs mount hides only
# inside this namespace. It must not be (or contain) a bind source.
_STAGE_CANDIDATES = ("/mnt", "/media", "/srv", "/opt", "/tmp")

# What a program may do with rlimits (name in the request -> resource constant).
RLIMITS = {
    "cpu_s": resource.RLIMIT_CPU,
    "address_space_bytes": resource.RLIMIT_AS,
    "file_size_bytes": resource.RLIMIT_FSIZE,
    "processes": resource.RLIMIT_NPROC,
    "open_files": resource.RLIMIT_NOFILE,
    "core_bytes": resource.RLIMIT_CORE,
    "stack_bytes": resource.RLIMIT_STACK,
}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s):
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare(0x{flags:x})")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source, target, fstype, flags: int, data=None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), f"prctl({option})")


def _stage_dir(binds) -> str:
    for cand in _STAGE_CANDIDATES:
        if os.path.isdir(cand) and not os.path.islink(cand) and not any(
                b == cand or b.startswith(cand + "/") for b in binds):
            return cand
    raise OSError(f"no directory to assemble the sandbox root in (tried {', '.join(_STAGE_CANDIDATES)})")


def _bind_ro(src: str, dst: str, allow_devices: bool = False) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            with open(dst, "w"):
                pass
    mount(src, dst, None, MS_BIND)
    # A bind mount ignores MS_RDONLY on creation: the read-only flag needs a remount of the bind.
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if allow_devices else MS_NODEV)
    mount(None, dst, None, flags)


def _write_file(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)


def enter_view(spec: dict) -> None:
    """Build and enter the read-only root described by ``spec`` (see the module docstring). Needs root."""
    binds = [b for b in spec["binds"] if os.path.exists(b)]
    unshare(CLONE_NEWNS | CLONE_NEWNET)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    root = _stage_dir(binds)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,nr_inodes=4096,mode=0755")
    for src in binds:
        _bind_ro(src, root + src)
    for dev in spec.get("devices", ()):
        _bind_ro(dev, root + dev, allow_devices=True)
    for path, target in spec.get("symlinks", {}).items():
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        if not os.path.lexists(root + path):
            os.symlink(target, root + path)
    for path, text in spec.get("files", {}).items():
        _write_file(root + path, text)
    os.makedirs(root + "/tmp", exist_ok=True)
    mount_work_tmpfs(spec, root + "/tmp")
    if spec.get("proc"):
        # Mounted in the host PID namespace with hidepid: a program sees only its own uid's processes.
        os.makedirs(root + "/proc", exist_ok=True)
        mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    os.makedirs(root + "/.old_root", exist_ok=True)
    pivot_root(root, root + "/.old_root")
    os.chdir("/")
    umount("/.old_root", MNT_DETACH)
    os.rmdir("/.old_root")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def mount_work_tmpfs(spec: dict, target: str = "/tmp", replace: bool = False) -> None:
    """The slot's work dir: a size- and inode-limited tmpfs owned by the slot uid. ``replace`` swaps in a fresh one
    (the old one, whatever a program left in it, is detached and freed)."""
    if replace:
        umount(target, MNT_DETACH)
    tmp = spec["tmp"]
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={tmp['size_mb']}m,nr_inodes={tmp['inodes']},mode=0700,uid={spec['uid']},gid={spec['gid']}")


def apply_rlimits(limits: dict) -> None:
    for name, value in limits.items():
        if value is None:
            continue
        res = RLIMITS[name]
        if name == "cpu_s":  # soft limit -> SIGXCPU, one second later the hard limit -> SIGKILL
            resource.setrlimit(res, (int(value), int(value) + 1))
        else:
            resource.setrlimit(res, (int(value), int(value)))


def drop_to(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good: no groups, no way back, no privilege gain through exec."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
