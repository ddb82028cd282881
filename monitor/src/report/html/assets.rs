//! The page's inline style sheet and script.

pub(super) const CSS: &str = r#"
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#ffffff;--panel:#f9fafb;--accent:#1d4ed8;
--ph-fg:#dcfce7;--ph-fg-d:#15803d;--ph-bg:#fef3c7;--ph-bg-d:#b45309;--ph-closed:#fee2e2;--ph-closed-d:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:20px;margin:36px 0 8px;padding-top:16px;border-top:2px solid var(--fg)}
h3{font-size:15px;margin:26px 0 8px;text-transform:uppercase;letter-spacing:.04em;color:#374151}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.sub{color:var(--muted);margin:0 0 16px}
.banner{padding:12px 16px;border-radius:8px;margin:12px 0;font-weight:600}
.banner.bad{background:#fee2e2;color:#7f1d1d;border:1px solid #fca5a5}
.banner.ok{background:#ecfdf5;color:#065f46;border:1px solid #a7f3d0}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:12px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0}
.headline{font-size:15px;margin:4px 0 10px}.headline.alert{font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--panel)}
.card .n{font-size:26px;font-weight:700}.card .l{color:var(--muted);font-size:12.5px}
.card.alert{background:#fff7ed;border-color:#fdba74}.card.alert .n{color:#c2410c}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600;white-space:nowrap;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.path{word-break:break-all}td.what{min-width:320px;overflow-wrap:anywhere}.nowrap{white-space:nowrap}
tbody tr:nth-child(even){background:#fcfcfd}
.findings tbody tr.closed{background:#fff5f5}.findings tbody tr.background{background:#fffbeb}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.foreground{background:var(--ph-fg);color:var(--ph-fg-d)}
.badge.background{background:var(--ph-bg);color:var(--ph-bg-d)}
.badge.closed{background:var(--ph-closed);color:var(--ph-closed-d)}
.badge.kind{background:#e0e7ff;color:#3730a3}
.badge.sens{background:#ede9fe;color:#5b21b6}.badge.noise{background:#f3f4f6;color:var(--muted)}
.none{color:var(--muted);font-style:italic}
.muted{color:var(--muted)}
details{margin:6px 0}summary{cursor:pointer;color:#374151}
.tl-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fff}
svg.timeline{display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .band rect{opacity:.85}svg .band.ph-fg rect{fill:var(--ph-fg)}svg .band.ph-bg rect{fill:var(--ph-bg)}svg .band.ph-closed rect{fill:var(--ph-closed)}
svg .band.ph-fg rect.strip{fill:var(--ph-fg-d)}svg .band.ph-bg rect.strip{fill:var(--ph-bg-d)}svg .band.ph-closed rect.strip{fill:var(--ph-closed-d)}
svg .strip-label{fill:#fff;font-weight:600;font-size:10px}
svg .lane-sep{stroke:#e5e7eb}svg .lane-label text{fill:#111827}svg .life{stroke:#9ca3af;stroke-width:2}
svg .axis{stroke:#6b7280}svg .tick{stroke:#6b7280}svg .tick-label{fill:#4b5563;text-anchor:middle}
svg .change line{stroke-width:2;stroke-dasharray:4 3}svg .change.ph-fg line{stroke:var(--ph-fg-d)}svg .change.ph-bg line{stroke:var(--ph-bg-d)}svg .change.ph-closed line{stroke:var(--ph-closed-d)}
svg .marker line{stroke:#374151;stroke-dasharray:2 3}svg .marker text{fill:#374151;font-size:10px}
svg .lc polygon{fill:#16a34a;stroke:#14532d;stroke-width:1}svg .lc-restart polygon{fill:#dc2626;stroke:#7f1d1d}svg .lc-relaunch polygon{fill:#2563eb;stroke:#1e3a8a}svg .lc-close path{stroke:#111827;stroke-width:2.5}svg .lc-survived circle{fill:none;stroke:#dc2626;stroke-width:2}
table.lifecycle tr.lc-restart td,table.lifecycle tr.lc-survived td{color:#991b1b}
svg .mk{cursor:pointer}svg .mk:hover,svg .mk:focus{outline:none;filter:drop-shadow(0 0 2px #111)}
.k-file{fill:#9ca3af;background:#9ca3af}.k-proc{fill:#111827;background:#111827}.k-state{fill:#0d9488;background:#0d9488}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:8px 2px;color:#374151;font-size:12.5px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px}
#detail{position:sticky;bottom:0;margin-top:8px;background:#111827;color:#f9fafb;border-radius:8px;padding:10px 14px;white-space:pre-wrap;font:12.5px ui-monospace,Menlo,Consolas,monospace;max-height:40vh;overflow:auto}
footer{margin-top:40px;padding-top:12px;border-top:1px solid var(--line);color:var(--muted);font-size:12.5px}
footer a{color:var(--accent)}
@media print{#detail{display:none}th{position:static}}
"#;

pub(super) const SCRIPT: &str = r#"
(function(){
  var panel=document.getElementById('detail');
  function show(el){var t=el.querySelector('title');panel.textContent=t?t.textContent:'';panel.hidden=false;}
  document.querySelectorAll('.mk').forEach(function(el){
    el.addEventListener('click',function(){show(el);});
    el.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();show(el);}});
  });
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){panel.hidden=true;}});
  document.documentElement.setAttribute('data-ready','1');
})();
"#;

/// The colours of the capabilities' timeline marks, from the capability table.
pub(super) fn capability_css() -> String {
    crate::capability::SPECS
        .iter()
        .map(|s| {
            format!(
                ".{c}{{fill:{k};background:{k}}}",
                c = s.mark_class,
                k = s.mark_color
            )
        })
        .collect()
}
