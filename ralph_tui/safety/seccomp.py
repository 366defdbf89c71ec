"""The seccomp filter every bubblewrap sandbox runs under: a classic-BPF program, assembled here.

Capabilities are dropped and the sandbox has its own user namespace, but the kernel's attack
surface behind mount, ptrace, keyctl, bpf, perf and module loading is where escapes come from;
mature sandboxes (Docker's and Flatpak's default profiles) refuse those calls outright, whoever
asks. So does this filter: each call in ``DENIED`` fails with ``EPERM``, ``clone`` with a
namespace flag fails with ``EPERM``, ``clone3`` with ``ENOSYS`` (its flags sit in memory a filter
cannot read; the C library then falls back to ``clone``), the terminal-injection ``ioctl``
(``TIOCSTI``) with ``EPERM``, and any call made through another ABI (32-bit, x32) with ``EPERM``,
so numbers cannot be switched behind the filter's back.

Hand-assembled rather than built with libseccomp so that no new dependency is needed; bwrap
loads it from a file descriptor (``--seccomp FD``). ``program()`` returns ``None`` on an
architecture this module has no table for; the caller then reports the sandbox as weaker.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass

# <linux/audit.h>
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# the calls refused whatever their arguments, with their numbers per architecture
_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "swapon": 167, "swapoff": 168, "reboot": 169, "setns": 308,
        "unshare": 272, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "userfaultfd": 323, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "adjtimex": 159, "iopl": 172, "ioperm": 173, "quotactl": 179,
        "syslog": 103, "vhangup": 153, "lookup_dcookie": 212, "uselib": 134,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "pidfd_getfd": 438,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "swapon": 224, "swapoff": 225, "reboot": 142, "setns": 268,
        "unshare": 97, "open_by_handle_at": 265, "name_to_handle_at": 264,
        "userfaultfd": 282, "acct": 89, "settimeofday": 170, "clock_settime": 112,
        "clock_adjtime": 266, "adjtimex": 171, "quotactl": 60, "syslog": 116, "vhangup": 58,
        "lookup_dcookie": 18, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    },
}  # fmt: skip
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = {"x86_64": 435, "aarch64": 435}
_IOCTL = {"x86_64": 16, "aarch64": 29}

DENIED: tuple[str, ...] = tuple(_NUMBERS["x86_64"])
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
CLONE_NAMESPACE_FLAGS |= 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
TIOCSTI = 0x5412

EPERM = 1
ENOSYS = 38

# classic BPF opcodes (<linux/bpf_common.h>) and seccomp return values (<linux/seccomp.h>)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

# offsets into struct seccomp_data: nr, arch, then the u64 args from 16 (low half first)
_NR = 0
_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


@dataclass(frozen=True)
class _Op:
    code: int
    k: int
    true: str | None = None  # label to jump to when the test holds (None: next instruction)
    false: str | None = None


class _Assembler:
    """Forward jumps by label, resolved to the 8-bit offsets classic BPF allows."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.ops)

    def load(self, offset: int) -> None:
        self.ops.append(_Op(_LD_W_ABS, offset))

    def jump(self, code: int, k: int, true: str | None, false: str | None = None) -> None:
        self.ops.append(_Op(code, k, true, false))

    def ret(self, value: int) -> None:
        self.ops.append(_Op(_RET_K, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for index, op in enumerate(self.ops):
            jt, jf = (self._offset(index, op.true), self._offset(index, op.false))
            out += struct.pack("=HBBI", op.code, jt, jf, op.k)
        return bytes(out)

    def _offset(self, index: int, label: str | None) -> int:
        if label is None:
            return 0
        offset = self.labels[label] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"seccomp: jump to {label} out of range ({offset})")
        return offset


def machine() -> str:
    return platform.machine()


def program(arch: str | None = None) -> bytes | None:
    """The filter as bwrap reads it (an array of ``struct sock_filter``), or None when there is
    no syscall table for ``arch`` (default: this machine's)."""
    arch = arch or machine()
    if arch not in _NUMBERS:
        return None
    asm = _Assembler()
    asm.load(_ARCH)
    asm.jump(_JEQ_K, _AUDIT_ARCH[arch], "native", "deny")
    asm.label("native")
    asm.load(_NR)
    if arch == "x86_64":
        asm.jump(_JGE_K, _X32_SYSCALL_BIT, "deny")
    for number in sorted(_NUMBERS[arch].values()):
        asm.jump(_JEQ_K, number, "deny")
    asm.jump(_JEQ_K, _CLONE3[arch], "enosys")
    asm.jump(_JEQ_K, _CLONE[arch], "clone")
    asm.jump(_JEQ_K, _IOCTL[arch], "ioctl", "allow")
    asm.label("clone")
    asm.load(_arg_low(0))
    asm.jump(_JSET_K, CLONE_NAMESPACE_FLAGS, "deny", "allow")
    asm.label("ioctl")
    asm.load(_arg_low(1))
    asm.jump(_JEQ_K, TIOCSTI, "deny", "allow")
    asm.label("allow")
    asm.ret(_RET_ALLOW)
    asm.label("deny")
    asm.ret(_RET_ERRNO | EPERM)
    asm.label("enosys")
    asm.ret(_RET_ERRNO | ENOSYS)
    return asm.assemble()


def number(name: str, arch: str | None = None) -> int | None:
    """The syscall number of ``name`` in the table (tests use it to call each one)."""
    return _NUMBERS.get(arch or machine(), {}).get(name)
