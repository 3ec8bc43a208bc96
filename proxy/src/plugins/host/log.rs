//! `log`: a plugin's lines in the node's log.

use super::HostState;
use crate::plugins::bindings::gatehouse::plugin::log;

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        self.log_lines += 1;
        let (plugin, request_id) = (self.owner(), &*self.ctx.request_id);
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    plugin,
                    request_id,
                    "the plugin's further log lines in this call are dropped \
                     (at most {MAX_LOG_LINES} a call)"
                );
            }
            return;
        }
        // Written in its debug form: quoted, with line breaks, quotes and
        // other control or invisible characters escaped, so one call is one
        // line and its text cannot pass for another line or for the fields.
        let message = cut(&message, MAX_LOG_MESSAGE);
        match level {
            log::Level::Debug => tracing::debug!(plugin, request_id, message = ?message),
            log::Level::Info => tracing::info!(plugin, request_id, message = ?message),
            log::Level::Warn => tracing::warn!(plugin, request_id, message = ?message),
            log::Level::Error => tracing::error!(plugin, request_id, message = ?message),
        }
    }
}

/// The longest message a plugin's log line carries, in bytes of UTF-8.
pub const MAX_LOG_MESSAGE: usize = 1024;
/// The most log lines a plugin writes in one call; later ones are dropped.
pub const MAX_LOG_LINES: u32 = 32;

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_messages_are_cut_to_a_kib_of_bytes_at_a_character_boundary() {
        // 'é' is two bytes: 512 of them fill the limit.
        let long = "é".repeat(2000);
        assert_eq!(cut(&long, MAX_LOG_MESSAGE).len(), MAX_LOG_MESSAGE);
        assert_eq!(
            cut(&format!("a{long}"), MAX_LOG_MESSAGE).len(),
            MAX_LOG_MESSAGE - 1
        );
        assert_eq!(cut("plain", MAX_LOG_MESSAGE), "plain");
        // The debug form the line is written in keeps it one line.
        let forged = "ok\n2026-01-01 ERROR forged\" plugin=\"other\u{2028}\u{1b}[31m";
        let written = format!("{:?}", cut(forged, MAX_LOG_MESSAGE));
        assert!(
            !written.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{written}"
        );
        assert!(written.contains(r#"\" plugin=\"other"#), "{written}");
    }
}
