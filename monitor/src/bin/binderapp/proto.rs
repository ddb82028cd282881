//! The binder protocol at the ioctl level: the driver's commands and returns, parcels, one
//! call and its reply, a service's loop.
use super::*;

pub(crate) const BINDER_WRITE_READ: u64 = 0xc030_6201;
/// `_IOW('b', 7, __s32)`.
pub(crate) const BINDER_SET_CONTEXT_MGR: u64 = 0x4004_6207;
pub(crate) const BC_TRANSACTION: u32 = 0x4040_6300;
pub(crate) const BC_REPLY: u32 = 0x4040_6301;
/// `_IOW('c', 3, binder_uintptr_t)`.
pub(crate) const BC_FREE_BUFFER: u32 = 0x4008_6303;
/// `_IOW('c', 9, struct binder_ptr_cookie)` / `_IOW('c', 8, ...)`.
pub(crate) const BC_INCREFS_DONE: u32 = 0x4010_6308;
pub(crate) const BC_ACQUIRE_DONE: u32 = 0x4010_6309;
/// `_IOW('c', 4, __u32)` / `_IOW('c', 5, __u32)`: take a weak / strong reference on a handle.
pub(crate) const BC_INCREFS: u32 = 0x4004_6304;
pub(crate) const BC_ACQUIRE: u32 = 0x4004_6305;
/// `_IO('c', 12)`.
pub(crate) const BC_ENTER_LOOPER: u32 = 0x0000_630c;
pub(crate) const BR_TRANSACTION: u32 = 0x8040_7202;
pub(crate) const BR_REPLY: u32 = 0x8040_7203;
pub(crate) const BR_TRANSACTION_COMPLETE: u32 = 0x0000_7206;
pub(crate) const BR_INCREFS: u32 = 0x8010_7207;
pub(crate) const BR_ACQUIRE: u32 = 0x8010_7208;
pub(crate) const BR_DEAD_REPLY: u32 = 0x0000_7205;
pub(crate) const BR_FAILED_REPLY: u32 = 0x0000_7211;
pub(crate) const TF_ONE_WAY: u32 = 1;
pub(crate) const BINDER_TYPE_BINDER: u32 = 0x7362_2a85;
pub(crate) const BINDER_TYPE_HANDLE: u32 = 0x7368_2a85;
pub(crate) const SYST: u32 = 0x5359_5354;
pub(crate) const MAP_SIZE: usize = 1 << 20;
pub(crate) const SERVICE_MANAGER: &str = "android.os.IServiceManager";

/// An open binder fd, mapped (the driver puts received parcels in the mapping).
pub(crate) struct Binder {
    pub(crate) fd: i32,
}

impl Binder {
    pub(crate) fn open() -> Binder {
        let fd = unsafe { libc::open(c"/dev/binder".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            die(&format!(
                "open /dev/binder: {} (this kernel has no binder: `modprobe binder_linux devices=binder`)",
                std::io::Error::last_os_error()
            ));
        }
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_SIZE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            die(&format!("mmap binder: {}", std::io::Error::last_os_error()));
        }
        Binder { fd }
    }

    /// Close the fd inherited from the parent. Its mapping was not: the kernel marks binder
    /// mappings VM_DONTCOPY, and the new fd's mapping may now sit at the same address.
    pub(crate) fn close_inherited(self) {
        unsafe { libc::close(self.fd) };
    }

    /// One BINDER_WRITE_READ: writes `w`, reads into `r`; returns the bytes read.
    pub(crate) fn write_read(&self, w: &[u8], r: &mut [u8]) -> usize {
        let mut bwr = [0u64; 6];
        bwr[0] = w.len() as u64;
        bwr[2] = w.as_ptr() as u64;
        bwr[3] = r.len() as u64;
        bwr[5] = r.as_mut_ptr() as u64;
        loop {
            let rc = unsafe { libc::ioctl(self.fd, BINDER_WRITE_READ as _, bwr.as_mut_ptr()) };
            if rc == 0 {
                return bwr[4] as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                die(&format!("BINDER_WRITE_READ: {e}"));
            }
        }
    }
}

pub(crate) fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend(v.to_le_bytes());
}
pub(crate) fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend(v.to_le_bytes());
}
pub(crate) fn get32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub(crate) fn get64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A parcel being written, with the offsets of the binder objects in it.
#[derive(Default)]
pub(crate) struct Parcel {
    pub(crate) data: Vec<u8>,
    pub(crate) offsets: Vec<u64>,
}

impl Parcel {
    pub(crate) fn i32(&mut self, v: i32) -> &mut Self {
        self.data.extend(v.to_le_bytes());
        self
    }
    pub(crate) fn string16(&mut self, s: &str) -> &mut Self {
        let units: Vec<u16> = s.encode_utf16().collect();
        put32(&mut self.data, units.len() as u32);
        for u in units {
            self.data.extend(u.to_le_bytes());
        }
        self.data.extend([0, 0]);
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
        self
    }
    /// `writeInterfaceToken` as libbinder writes it: Android 11+ (`system`) or Android 10.
    pub(crate) fn token(&mut self, layout: &str, interface: &str) -> &mut Self {
        self.i32(0x4000_0000u32 as i32); // strict-mode policy
        self.i32(-1); // work-source uid: none
        if layout == "system" {
            self.i32(SYST as i32);
        }
        self.string16(interface)
    }
    /// A `flat_binder_object`: a local object (`binder` = its address) or a handle.
    pub(crate) fn object(&mut self, ty: u32, value: u64) -> &mut Self {
        self.offsets.push(self.data.len() as u64);
        put32(&mut self.data, ty);
        put32(&mut self.data, 0x17f); // FLAT_BINDER_FLAG_ACCEPTS_FDS | priority 0x7f
        put64(&mut self.data, value);
        put64(
            &mut self.data,
            if ty == BINDER_TYPE_BINDER { value } else { 0 },
        );
        self
    }
}

/// `struct binder_transaction_data` for BC_TRANSACTION / BC_REPLY.
pub(crate) fn transaction(cmd: u32, handle: u32, code: u32, flags: u32, p: &Parcel) -> Vec<u8> {
    let mut w = Vec::new();
    put32(&mut w, cmd);
    put64(&mut w, handle as u64); // target (union with ptr)
    put64(&mut w, 0); // cookie
    put32(&mut w, code);
    put32(&mut w, flags);
    put32(&mut w, 0); // sender_pid
    put32(&mut w, 0); // sender_euid
    put64(&mut w, p.data.len() as u64);
    put64(&mut w, (p.offsets.len() * 8) as u64);
    put64(&mut w, p.data.as_ptr() as u64);
    put64(&mut w, p.offsets.as_ptr() as u64);
    w
}

/// A received transaction (BR_TRANSACTION / BR_REPLY payload).
pub(crate) struct Received {
    pub(crate) code: u32,
    pub(crate) flags: u32,
    pub(crate) data: Vec<u8>,
    pub(crate) buffer: u64,
}

pub(crate) fn received(r: &[u8], at: usize) -> Received {
    let code = get32(r, at + 16);
    let flags = get32(r, at + 20);
    let size = get64(r, at + 32) as usize;
    let buffer = get64(r, at + 48);
    let data = if size > 0 {
        unsafe { std::slice::from_raw_parts(buffer as *const u8, size) }.to_vec()
    } else {
        Vec::new()
    };
    Received {
        code,
        flags,
        data,
        buffer,
    }
}

/// Keep a handle received in a parcel: its reference goes with the buffer otherwise (an
/// `sp<IBinder>` does this in libbinder).
pub(crate) fn acquire(w: &mut Vec<u8>, handle: u32) {
    put32(w, BC_INCREFS);
    put32(w, handle);
    put32(w, BC_ACQUIRE);
    put32(w, handle);
}

pub(crate) fn free_buffer(w: &mut Vec<u8>, buffer: u64) {
    put32(w, BC_FREE_BUFFER);
    put64(w, buffer);
}

/// The commands in a read buffer: (command, offset of its payload).
pub(crate) fn commands(r: &[u8], n: usize) -> Vec<(u32, usize)> {
    let mut v = Vec::new();
    let mut o = 0;
    while o + 4 <= n {
        let cmd = get32(r, o);
        v.push((cmd, o + 4));
        o += 4 + ((cmd >> 16) & 0x3fff) as usize;
    }
    v
}

/// A call and, unless one-way, its reply. `pending` (BC_FREE_BUFFER of the last reply) goes
/// in the same write, before the transaction, as libbinder does.
pub(crate) fn call(
    b: &Binder,
    pending: &mut Vec<u8>,
    handle: u32,
    code: u32,
    flags: u32,
    p: &Parcel,
) -> Option<Vec<u8>> {
    let mut w = std::mem::take(pending);
    w.extend(transaction(BC_TRANSACTION, handle, code, flags, p));
    let mut r = [0u8; 256];
    let mut first = true;
    loop {
        let n = b.write_read(if first { &w } else { &[] }, &mut r);
        first = false;
        for (cmd, at) in commands(&r, n) {
            match cmd {
                BR_TRANSACTION_COMPLETE if flags & TF_ONE_WAY != 0 => return None,
                BR_REPLY => {
                    let rep = received(&r, at);
                    free_buffer(pending, rep.buffer);
                    return Some(rep.data);
                }
                BR_DEAD_REPLY | BR_FAILED_REPLY => die(&format!(
                    "call to handle {handle} (code {code}) failed: {}",
                    if cmd == BR_DEAD_REPLY {
                        "BR_DEAD_REPLY"
                    } else {
                        "BR_FAILED_REPLY"
                    }
                )),
                _ => {}
            }
        }
    }
}

/// A server loop: `answer` gets each transaction and returns the reply parcel.
pub(crate) fn serve(b: &Binder, mut answer: impl FnMut(&Received) -> Parcel) -> ! {
    let mut w = Vec::new();
    put32(&mut w, BC_ENTER_LOOPER);
    let mut r = [0u8; 512];
    loop {
        let n = b.write_read(&w, &mut r);
        w.clear();
        for (cmd, at) in commands(&r, n) {
            match cmd {
                BR_TRANSACTION => {
                    let t = received(&r, at);
                    let reply = answer(&t);
                    free_buffer(&mut w, t.buffer);
                    if t.flags & TF_ONE_WAY == 0 {
                        w.extend(transaction(BC_REPLY, 0, 0, 0, &reply));
                        // The reply parcel must live until the write: send it now (nothing
                        // read: BR_TRANSACTION_COMPLETE waits for the next read).
                        b.write_read(&w, &mut []);
                        w.clear();
                        drop(reply);
                    }
                }
                BR_INCREFS | BR_ACQUIRE => {
                    // Acknowledge references to our nodes: binder_ptr_cookie.
                    put32(
                        &mut w,
                        if cmd == BR_INCREFS {
                            BC_INCREFS_DONE
                        } else {
                            BC_ACQUIRE_DONE
                        },
                    );
                    w.extend_from_slice(&r[at..at + 16]);
                }
                _ => {}
            }
        }
    }
}
