//! Readable renderings of bulk-port events, as one text line or one JSON
//! object: shared by `guestinit decode` and the `run -v` trace.

use guestinit::proto::splat::Splat;
use guestinit::wire::msg::{
    code_from_bytes, BuildId, Exit, KernelAddrs, Mark, Phase, Timeline, WaitStatus,
};
use guestinit::wire::{Event, Tag};
use serde_json::{json, Value};

/// Bytes as text with escapes: valid UTF-8 is kept (control characters
/// escaped), each invalid byte shows as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The summary line of `splat`: its kind, when, and its first line.
pub fn summary(splat: &Splat<'_>) -> String {
    let secs = splat.ts_usec / 1_000_000;
    let usecs = splat.ts_usec % 1_000_000;
    format!(
        "kernel {} at {secs}.{usecs:06}s: {}{}",
        splat.kind.name(),
        String::from_utf8_lossy(splat.headline()),
        if splat.cut {
            " (cut: longer than the frame's bound)"
        } else {
            ""
        }
    )
}

/// A frame's payload, interpreted by its tag. A payload that does not fit
/// its tag's layout stays `Raw`.
enum Payload<'a> {
    Text(&'a [u8]),
    Code(i32),
    Kadr(KernelAddrs),
    BuildId(BuildId<'a>),
    Life { phase: u8, reason: &'a [u8] },
    Time(Vec<(u8, u64)>),
    Wait(WaitStatus),
    Splat(Splat<'a>),
    Raw(&'a [u8]),
}

impl<'a> Payload<'a> {
    fn of(tag: Tag, payload: &'a [u8]) -> Payload<'a> {
        let by_layout = match tag {
            Tag::SOUT | Tag::SERR | Tag::SCLG | Tag::DMSG => Some(Payload::Text(payload)),
            Tag::EXIT | Tag::SCDX | Tag::EXCX => code_from_bytes(tag, payload).map(Payload::Code),
            Tag::KADR => KernelAddrs::from_bytes(payload).map(Payload::Kadr),
            Tag::KBID => BuildId::from_bytes(payload).map(Payload::BuildId),
            Tag::LIFE => payload
                .split_first()
                .map(|(&phase, reason)| Payload::Life { phase, reason }),
            Tag::TIME => Some(Payload::Time(Timeline::entries(payload).collect())),
            Tag::WAIT => WaitStatus::from_bytes(payload).map(Payload::Wait),
            Tag::KWRN => Splat::decode(payload).map(Payload::Splat),
            _ => None,
        };
        by_layout.unwrap_or(Payload::Raw(payload))
    }
}

/// A build-id as `readelf -n` prints it: lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_or_unknown(v: Option<u64>) -> String {
    v.map_or("unknown".into(), |v| format!("{v:#x}"))
}

fn mark_name(raw: u8) -> String {
    Mark::from_u8(raw).map_or(format!("mark {raw}"), |m| m.name().to_owned())
}

fn phase_name(raw: u8) -> Option<String> {
    Phase::from_u8(raw).map(|p| format!("{p:?}"))
}

/// A frame in words: `SOUT 3 "hi\n"`, `EXIT 4 code=0`, `SRDY 0`.
pub fn frame_text(tag: Tag, payload: &[u8]) -> String {
    let body = match Payload::of(tag, payload) {
        Payload::Text(text) => format!("\"{}\"", escape(text)),
        Payload::Code(code) => format!("code={code}"),
        Payload::Kadr(k) => format!(
            "phys_base={} page_offset_base={:#x} text={}",
            hex_or_unknown(k.phys_base),
            k.page_offset_base,
            hex_or_unknown(k.text)
        ),
        Payload::BuildId(BuildId(id)) => format!("build_id={}", id.map_or("unknown".into(), hex)),
        Payload::Life { phase, reason } => {
            let name = phase_name(phase).unwrap_or(format!("invalid({phase})"));
            if reason.is_empty() {
                format!("phase={name}")
            } else {
                format!("phase={name} reason=\"{}\"", escape(reason))
            }
        }
        Payload::Time(marks) => marks
            .iter()
            .map(|&(mark, ns)| {
                format!(
                    "{}={:.3}ms",
                    mark_name(mark).replace(' ', "_"),
                    ns as f64 / 1e6
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        Payload::Splat(s) => format!(
            "{} seq={} lines={} \"{}\"",
            escape(summary(&s).as_bytes()),
            s.seq,
            s.text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
            escape(s.text)
        ),
        Payload::Wait(w) => {
            let how = match w.exit {
                Exit::Exited(code) => format!("exited code={code}"),
                Exit::Signaled {
                    signal,
                    core_dumped: true,
                } => format!("killed signal={signal} core_dumped"),
                Exit::Signaled { signal, .. } => format!("killed signal={signal}"),
            };
            format!(
                "{how} user_us={} system_us={} max_rss_kib={} init_hwm_kib={}",
                w.user_us, w.system_us, w.max_rss_kib, w.init_hwm_kib
            )
        }
        Payload::Raw([]) => String::new(),
        Payload::Raw(bytes) => format!("\"{}\"", escape(bytes)),
    };
    format!("{tag} {} {body}", payload.len())
        .trim_end()
        .to_owned()
}

/// A frame's payload as JSON fields (beside `event`, `tag` and `len`).
pub fn frame_fields(tag: Tag, payload: &[u8]) -> Value {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match Payload::of(tag, payload) {
        Payload::Text(text) => json!({"text": lossy(text)}),
        Payload::Code(code) => json!({"code": code}),
        Payload::Kadr(k) => json!({
            "phys_base": k.phys_base, "page_offset_base": k.page_offset_base, "text_addr": k.text,
        }),
        Payload::BuildId(BuildId(id)) => json!({"build_id": id.map(hex)}),
        Payload::Life { phase, reason } => json!({
            "phase": phase_name(phase), "phase_code": phase, "reason": lossy(reason),
        }),
        Payload::Time(marks) => {
            let marks: Vec<_> = marks
                .iter()
                .map(|&(mark, ns)| json!({"mark": mark_name(mark), "code": mark, "ns": ns}))
                .collect();
            json!({ "marks": marks })
        }
        Payload::Wait(w) => json!({
            "exit_code": exit_code(w.exit), "signal": signal(w.exit),
            "core_dumped": matches!(w.exit, Exit::Signaled { core_dumped: true, .. }),
            "user_us": w.user_us, "system_us": w.system_us,
            "max_rss_kib": w.max_rss_kib, "init_hwm_kib": w.init_hwm_kib,
        }),
        Payload::Splat(s) => json!({
            "kind": s.kind.name(), "seq": s.seq, "ts_usec": s.ts_usec, "cut": s.cut,
            "summary": summary(&s), "text": lossy(s.text),
        }),
        Payload::Raw([]) => json!({}),
        Payload::Raw(bytes) => json!({"raw": lossy(bytes)}),
    }
}

/// One event as a text line. `at_end` marks events of `Decoder::finish`,
/// whose skipped bytes are a truncated tail rather than garbage.
pub fn event_text(event: &Event<'_>, at_end: bool) -> String {
    match *event {
        Event::Frame { tag, payload } => frame_text(tag, payload),
        Event::CrcMismatch {
            tag,
            len,
            expected,
            actual,
        } => format!(
            "CRC mismatch: {tag} frame of {len} bytes (header {expected:#010x}, payload {actual:#010x})"
        ),
        Event::Skipped { bytes } if at_end => {
            format!("truncated: {bytes} bytes at the end complete no frame")
        }
        Event::Skipped { bytes } => format!("skipped {bytes} bytes"),
    }
}

/// One event as a JSON object.
pub fn event_json(event: &Event<'_>, at_end: bool) -> Value {
    match *event {
        Event::Frame { tag, payload } => {
            let mut object =
                json!({"event": "frame", "tag": tag.to_string(), "len": payload.len()});
            if let (Value::Object(out), Value::Object(fields)) =
                (&mut object, frame_fields(tag, payload))
            {
                out.extend(fields);
            }
            object
        }
        Event::CrcMismatch {
            tag,
            len,
            expected,
            actual,
        } => json!({
            "event": "crc_mismatch", "tag": tag.to_string(), "len": len,
            "expected_crc": expected, "actual_crc": actual,
        }),
        Event::Skipped { bytes } if at_end => json!({"event": "truncated", "bytes": bytes}),
        Event::Skipped { bytes } => json!({"event": "skipped", "bytes": bytes}),
    }
}

/// The exit code of a normal exit, for JSON (null for a signal).
fn exit_code(exit: Exit) -> Option<u8> {
    match exit {
        Exit::Exited(code) => Some(code),
        Exit::Signaled { .. } => None,
    }
}

/// The signal of a death by signal, for JSON (null for an exit).
fn signal(exit: Exit) -> Option<u8> {
    match exit {
        Exit::Exited(_) => None,
        Exit::Signaled { signal, .. } => Some(signal),
    }
}
