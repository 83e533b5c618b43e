//! The host's own reply lines, in scx_stats' shape: `errno`, and the
//! reason as `args.resp`, as scx_stats' own error replies have it.

pub fn error_line(errno: i32, why: &str) -> Vec<u8> {
    let reply = serde_json::json!({ "errno": errno, "args": { "resp": why } });
    let mut line = reply.to_string().into_bytes();
    line.push(b'\n');
    line
}
