//! The architectures a filter can cover on this machine.

use oci_spec::runtime::Arch;

use crate::syscalls;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 syscalls arrive with AUDIT_ARCH_X86_64 and this bit set in the number.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One section of the program: the syscalls of one ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
}

impl Abi {
    #[cfg(target_arch = "x86_64")]
    pub(crate) const NATIVE: Abi = Abi::X86_64;
    #[cfg(target_arch = "aarch64")]
    pub(crate) const NATIVE: Abi = Abi::Aarch64;

    /// The ABIs this machine can run besides the native one, in program order.
    pub(crate) fn compat() -> &'static [Abi] {
        match Abi::NATIVE {
            Abi::X86_64 => &[Abi::X32, Abi::X86],
            Abi::Aarch64 => &[Abi::Arm],
            _ => &[],
        }
    }

    /// Maps an OCI arch; `None` for ones that cannot run on this machine
    /// (a section for them could never match, as with libseccomp).
    pub(crate) fn from_oci(arch: Arch) -> Option<Abi> {
        let abi = match arch {
            Arch::ScmpArchNative => Abi::NATIVE,
            Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchX32 => Abi::X32,
            Arch::ScmpArchAarch64 => Abi::Aarch64,
            Arch::ScmpArchArm => Abi::Arm,
            _ => return None,
        };
        (abi == Abi::NATIVE || Abi::compat().contains(&abi)).then_some(abi)
    }

    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// Whether syscall arguments are 64 bits wide. Like libseccomp, x32 counts
    /// as a 32-bit ABI: only the low words are compared.
    pub(crate) fn wide_args(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    /// The number this ABI uses for `name`, or `None` if this kernel's table
    /// does not have it.
    pub(crate) fn syscall_nr(self, name: &str) -> Option<u32> {
        let table = match self {
            Abi::X86_64 => syscalls::X86_64,
            Abi::X86 => syscalls::X86,
            Abi::X32 => syscalls::X32,
            Abi::Aarch64 => syscalls::AARCH64,
            Abi::Arm => syscalls::ARM,
        };
        let i = table.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        let nr = table[i].1;
        Some(if self == Abi::X32 {
            nr | X32_SYSCALL_BIT
        } else {
            nr
        })
    }
}
