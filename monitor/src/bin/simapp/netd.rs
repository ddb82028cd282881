//! `emuwatch-simapp netd --pidfile FILE`: plays Android's netd, the resolver every app's
//! `getaddrinfo` goes through. It names itself `netd` (prctl PR_SET_NAME), listens on
//! `/dev/socket/dnsproxyd` (tests run it in a mount namespace with a private /dev and
//! resolv.conf), writes its pid to FILE once listening, and for each request
//! `getaddrinfo NAME ...` resolves NAME with the C library's resolver (DNS packets to the
//! resolv.conf's server, sent by this process, as netd sends them), prints
//! `{"pid":..,"step":"netd","name":..,"addr":..}` and replies `222 ADDR` (the first IPv4
//! address) or `401 ...`.
//! Runs until killed.
use std::{
    io::{Read, Write},
    net::ToSocketAddrs,
    os::unix::net::UnixListener,
};

use super::{json_str, pid};

pub fn netd(args: &[String]) {
    let pidfile = super::arg_value(args, "--pidfile").expect("netd --pidfile FILE");
    let name = c"netd";
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    let path = "/dev/socket/dnsproxyd";
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).expect("bind /dev/socket/dnsproxyd");
    let tmp = format!("{pidfile}.tmp");
    std::fs::write(&tmp, pid().to_string()).expect("write pid file");
    std::fs::rename(&tmp, &pidfile).expect("rename pid file");
    for mut c in l.incoming().flatten() {
        let mut b = [0u8; 512];
        let n = c.read(&mut b).unwrap_or(0);
        let req = String::from_utf8_lossy(&b[..n]);
        let host = req
            .trim_end_matches('\0')
            .strip_prefix("getaddrinfo ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or("")
            .to_string();
        let addr = (host.as_str(), 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|a| a.is_ipv4()))
            .map(|a| a.ip().to_string());
        let reply = match &addr {
            Some(a) => format!("222 {a}\0"),
            None => "401 no address\0".to_string(),
        };
        // Said before the reply: once the app has its answer, the line is out.
        println!(
            "{{\"pid\":{},\"step\":\"netd\",\"name\":{},\"addr\":{}}}",
            pid(),
            json_str(&host),
            addr.as_deref().map_or("null".to_string(), json_str)
        );
        let _ = c.write_all(reply.as_bytes());
    }
}
