//! A small classic-BPF assembler for seccomp programs.
//!
//! The program is emitted backwards, from the last instruction to the first,
//! as Chromium's and Go's seccomp code generators do: every jump target already
//! exists when a jump is emitted, so its distance is known exactly, and a
//! target more than 255 instructions away gets a `ja` trampoline (32-bit
//! offset) placed right after the jump.

use std::collections::HashMap;

use libc::sock_filter;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;

/// Conditional jumps on the accumulator against a constant (unsigned).
#[derive(Clone, Copy)]
pub(crate) enum Jmp {
    Eq = 0x15,
    Gt = 0x25,
    Ge = 0x35,
}

/// Position of an emitted instruction, counted from the end of the program.
pub(crate) type Label = usize;

#[derive(Default)]
pub(crate) struct Asm {
    rev: Vec<sock_filter>,
    rets: HashMap<u32, Label>,
}

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

impl Asm {
    fn push(&mut self, i: sock_filter) -> Label {
        self.rev.push(i);
        self.rev.len() - 1
    }

    /// Distance from the next instruction to be emitted to `target`.
    fn dist(&self, target: Label) -> usize {
        self.rev.len() - 1 - target
    }

    /// `ret k`, shared with an earlier identical one while it is in reach.
    pub(crate) fn ret(&mut self, k: u32) -> Label {
        if let Some(&l) = self.rets.get(&k) {
            if self.dist(l) <= 255 {
                return l;
            }
        }
        let l = self.push(ins(BPF_RET_K, 0, 0, k));
        self.rets.insert(k, l);
        l
    }

    /// `ld [offset]`, continuing at `next`.
    pub(crate) fn load(&mut self, offset: u32, next: Label) -> Label {
        self.fall_into(next);
        self.push(ins(BPF_LD_W_ABS, 0, 0, offset))
    }

    /// `and #k`, continuing at `next`.
    pub(crate) fn and(&mut self, k: u32, next: Label) -> Label {
        self.fall_into(next);
        self.push(ins(BPF_ALU_AND_K, 0, 0, k))
    }

    /// Makes the next emitted instruction fall through to `next`: it does
    /// when `next` was emitted last, otherwise a `ja` bridges the gap.
    fn fall_into(&mut self, next: Label) {
        if next + 1 != self.rev.len() {
            self.ja(next);
        }
    }

    /// `jcond #k, t, f`, with trampolines for far targets.
    pub(crate) fn jump(&mut self, op: Jmp, k: u32, mut t: Label, mut f: Label) -> Label {
        loop {
            if self.dist(t) > 255 {
                t = self.ja(t);
            } else if self.dist(f) > 255 {
                f = self.ja(f);
            } else {
                break;
            }
        }
        let (jt, jf) = (self.dist(t) as u8, self.dist(f) as u8);
        self.push(ins(op as u16, jt, jf, k))
    }

    fn ja(&mut self, target: Label) -> Label {
        let k = self.dist(target) as u32;
        self.push(ins(BPF_JA, 0, 0, k))
    }

    pub(crate) fn finish(mut self) -> Vec<sock_filter> {
        self.rev.reverse();
        self.rev
    }
}

/// A tiny interpreter for the subset we emit, so unit tests can check the
/// program's decisions without loading it.
#[cfg(test)]
pub(crate) fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
    run_counted(prog, data).0
}

/// Like `run`, also returning how many instructions were executed.
#[cfg(test)]
pub(crate) fn run_counted(prog: &[sock_filter], data: &[u8; 64]) -> (u32, usize) {
    let word =
        |off: u32| u32::from_ne_bytes(data[off as usize..off as usize + 4].try_into().unwrap());
    let (mut pc, mut a, mut steps) = (0usize, 0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        steps += 1;
        match i.code {
            BPF_LD_W_ABS => a = word(i.k),
            BPF_ALU_AND_K => a &= i.k,
            BPF_JA => pc += i.k as usize,
            BPF_RET_K => return (i.k, steps),
            code => {
                let hit = match code {
                    0x15 => a == i.k,
                    0x25 => a > i.k,
                    0x35 => a >= i.k,
                    _ => panic!("unknown opcode {code:#x}"),
                };
                pc += if hit { i.jt } else { i.jf } as usize;
            }
        }
    }
}
