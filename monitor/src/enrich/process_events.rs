//! Process and lifecycle records (fork, exec, exit, chdir, rename, setuid, oom_score_adj)
//! become events.
use super::*;

impl Enricher {
    /// A fork: the parent is made known before the child inherits from it.
    pub(super) fn on_fork(
        &mut self,
        h: Header,
        f: monitor_common::process::Fork,
        out: &mut Vec<Event>,
    ) {
        // Make sure the parent is known before the child inherits from it.
        let comm = cstr(&h.comm);
        self.known(&h, out);
        self.procs.fork(h.tgid, f.child_tgid, h.uid, &comm);
        let body = Body::Process(event::Process {
            child_pid: Some(f.child_tgid),
            ..event::Process::op(ProcOp::Fork)
        });
        self.event(&h, body, out);
    }

    /// An exec: the process is identified again by its new name.
    pub(super) fn on_exec(
        &mut self,
        h: Header,
        e: monitor_common::process::Exec,
        out: &mut Vec<Event>,
    ) {
        let filename = (e.filename_len > 0).then(|| cstr(&e.filename));
        let body = Body::Process(event::Process {
            filename,
            ..event::Process::op(ProcOp::Exec)
        });
        self.event(&h, body, out);
        self.procs.exec(h.tgid, h.uid, &cstr(&h.comm));
        self.handles.forget(h.tgid);
    }

    /// An exit, with its status or signal when the kernel gave one.
    pub(super) fn on_exit(
        &mut self,
        h: Header,
        e: monitor_common::process::Exit,
        out: &mut Vec<Event>,
    ) {
        // wait(2) encoding: low 7 bits = terminating signal, bits 8-15 = exit status.
        // Negative: unknown (a kernel without BTF, and a process killed by a signal).
        let (exit_code, signal) = if e.exit_code < 0 {
            (None, None)
        } else if e.exit_code & 0x7f != 0 {
            (None, Some(e.exit_code & 0x7f))
        } else {
            (Some((e.exit_code >> 8) & 0xff), None)
        };
        let body = Body::Process(event::Process {
            exit_code,
            signal,
            ..event::Process::op(ProcOp::Exit)
        });
        self.event(&h, body, out);
        self.procs.exit(h.tgid);
        self.handles.forget(h.tgid);
    }

    /// chdir / fchdir: the new working directory, for resolving relative paths.
    pub(super) fn on_chdir(
        &mut self,
        h: Header,
        c: monitor_common::file::FileOpen,
        out: &mut Vec<Event>,
    ) {
        let info = self.known(&h, out);
        let new_cwd = if c.syscall == SYS_FCHDIR {
            self.fds.path_of(h.tgid, c.dfd)
        } else if c.path_status != PATH_FAULT && c.path_len > 0 && (c.path_len as usize) < PATH_LEN
        {
            // (A cut path is not resolved: the cwd comes from /proc below.)
            self.fds
                .absolute(h.tgid, AT_FDCWD, &cstr(&c.path), info.cwd.as_deref())
        } else {
            None
        };
        let new_cwd = new_cwd.or_else(|| self.procs.proc.cwd(h.tgid));
        if c.result == 0
            && let Some(cwd) = &new_cwd
        {
            self.procs.set_cwd(h.tgid, cwd.clone());
        }
        let body = Body::Process(event::Process {
            cwd: new_cwd,
            result: (c.result != 0).then_some(c.result),
            ..event::Process::op(ProcOp::Chdir)
        });
        self.event(&h, body, out);
    }

    /// A process renaming itself (Android app processes name themselves after their package).
    pub(super) fn on_rename(
        &mut self,
        h: Header,
        r: monitor_common::process::Rename,
        out: &mut Vec<Event>,
    ) {
        let name = cstr(&r.new_comm);
        // Android: the thread name is the last 15 bytes of the process name, argv[0]
        // the whole name (`pkg:remote`).
        let process_name = (h.tid == h.tgid)
            .then(|| self.procs.proc.argv0(h.tgid))
            .flatten()
            .filter(|a| !name.is_empty() && a.ends_with(name.as_str()));
        let body = Body::Process(event::Process {
            name: Some(name.clone()),
            process_name,
            ..event::Process::op(ProcOp::Rename)
        });
        self.event(&h, body, out);
        if h.tid == h.tgid {
            // An Android app process names itself after its package once forked from
            // zygote: identify it again.
            self.procs.exec(h.tgid, h.uid, &name);
        }
    }

    /// A uid change (a zygote child becoming its app).
    pub(super) fn on_setuid(
        &mut self,
        h: Header,
        u: monitor_common::process::Setuid,
        out: &mut Vec<Event>,
    ) {
        // A zygote child taking its app's uid: from here on it is the app's process.
        // Its oom_score_adj is still zygote's (the system scores it next): no band
        // is read for it when it is first seen here.
        if u.became_target != 0 {
            let _ = self.procs.lookup(h.tgid, h.uid, &cstr(&h.comm));
        }
        self.procs.setuid(h.tgid, h.uid);
        let syscall = match u.syscall {
            monitor_common::process::setuid::SETUID => "setuid",
            monitor_common::process::setuid::SETREUID => "setreuid",
            _ => "setresuid",
        };
        let body = Body::Process(event::Process {
            syscall: Some(syscall.into()),
            became_target: Some(u.became_target != 0),
            ..event::Process::op(ProcOp::Setuid)
        });
        self.event(&h, body, out);
    }

    /// An oom_score_adj write: the app's band, and who wrote it.
    pub(super) fn on_app_state(
        &mut self,
        h: Header,
        a: monitor_common::app_state::AppState,
        out: &mut Vec<Event>,
    ) {
        // Attribute to the process whose score changed; the header is the writer.
        let target = Header {
            tgid: a.target_tgid,
            tid: a.target_tgid,
            comm: a.target_comm,
            uid: self
                .procs
                .get(a.target_tgid)
                .map(|p| p.uid)
                .or_else(|| self.procs.proc.uid(a.target_tgid))
                .unwrap_or(h.uid),
            ..h
        };
        // Written by the app itself (the process, or another process of its app) or
        // by the system (lmkd, system_server: processes outside the app).
        let target_app = self.procs.get(target.tgid).map(|p| p.app.clone());
        let by_app = h.tgid == target.tgid
            || self
                .procs
                .get(h.tgid)
                .is_some_and(|w| !w.exited && target_app.as_deref() == Some(w.app.as_str()));
        let body = Body::AppState(event::AppState {
            oom_score_adj: a.oom_score_adj,
            band: android::band(a.oom_score_adj).to_string(),
            source: StateSource::Kernel,
            written_by: Some(if by_app { Writer::App } else { Writer::System }),
            writer_pid: Some(h.tgid),
            writer_comm: Some(cstr(&h.comm)),
        });
        self.event(&target, body, out);
    }
}
