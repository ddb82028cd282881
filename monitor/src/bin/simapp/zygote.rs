//! `zygote`: forks app processes the way Android's zygote does (cgroup, uid drop, rename,
//! never exec).
use super::*;

/// Overwrite argv[0] in place (the whole argument block, as Android's `setArgv0` does), so
/// /proc/PID/cmdline shows `name`.
fn set_argv0(name: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    // Fields from the 3rd on; arg_start and arg_end are the 48th and 49th.
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (Some(&start), Some(&end)) = (f.get(45), f.get(46)) else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }
    let len = (end - start) as usize;
    let bytes = name.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is this process's own argument block, writable stack
    // memory; the program has read its arguments already.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
    }
}

/// The last 15 bytes of a process name: Android's thread name for it.
fn thread_name(name: &str) -> &str {
    let mut start = name.len().saturating_sub(15);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    &name[start..]
}

/// Android's zygote: forks app processes that drop to their app's uid and rename themselves,
/// never exec'ing (see the module documentation).
pub(super) fn zygote(args: &[String]) {
    // Room for the children's names in the argument block (Android's zygote has plenty):
    // run again with padding when it is short.
    let block: usize = std::env::args().map(|a| a.len() + 1).sum();
    if block < 128
        && let Ok(exe) = std::env::current_exe()
    {
        let exe = CString::new(exe.as_os_str().as_encoded_bytes()).expect("path");
        let mut argv: Vec<CString> = std::env::args()
            .map(|a| CString::new(a).expect("arg"))
            .collect();
        argv.push(CString::new("--pad").unwrap());
        argv.push(CString::new("-".repeat(128)).unwrap());
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        unsafe { libc::execv(exe.as_ptr(), ptrs.as_ptr()) };
    }
    let cgroup = arg_value(args, "--cgroup");
    // Android's zygote runs at -1000 (some hosts refuse negative scores: then it keeps its own).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // Children are reaped by the kernel.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut line = String::new();
    loop {
        line.clear();
        if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        match words.first().map(String::as_str) {
            Some("spawn") if words.len() >= 4 => {
                let name = words[1].clone();
                let uid: u32 = words[2].parse().expect("uid");
                let gate = words[3].clone();
                let child = unsafe { libc::fork() };
                if child == 0 {
                    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
                    app_process(&name, uid, &gate, cgroup.as_deref(), &words[4..]);
                    std::process::exit(0);
                }
            }
            Some("do") => steps(&words[1..]),
            Some("exit") => break,
            None => {}
            Some(other) => panic!("zygote: unknown command {other:?}"),
        }
    }
}

/// A zygote child: cgroup (as root), uid, then name, then the app's code.
fn app_process(name: &str, uid: u32, gate: &str, cgroup: Option<&str>, app_steps: &[String]) {
    let me = pid();
    if let Some(root) = cgroup {
        let dir = std::path::Path::new(root)
            .join(format!("uid_{uid}"))
            .join(format!("pid_{me}"));
        std::fs::create_dir_all(&dir).expect("create the process's cgroup");
        std::fs::write(dir.join("cgroup.procs"), me.to_string()).expect("join the cgroup");
    }
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(uid, uid, uid), 0, "setresgid");
        assert_eq!(libc::setresuid(uid, uid, uid), 0, "setresuid");
    }
    out(format!(
        "{{\"pid\":{me},\"spawned\":{},\"uid\":{uid}}}",
        json_str(name)
    ));
    if gate != "-" {
        out(step(&format!("waitfile={gate}")));
    }
    set_argv0(name);
    let c = CString::new(thread_name(name)).expect("name");
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    steps(app_steps);
}
