//! emuwatch kernel programs. One file per probe family under `probes/`; the target filter,
//! the ring buffer and the loss counters live in `maps.rs` / `emit.rs` / `filter.rs` so every
//! probe family uses the same ones.
#![no_std]
#![no_main]

mod args;
mod emit;
mod filter;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL-compatible: needed for bpf_probe_read_user_str and friends.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
