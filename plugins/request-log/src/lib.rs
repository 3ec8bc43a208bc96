//! The built-in request log, as a plugin: it takes the records the node
//! measured, a batch of finished requests per call, and ships them into the
//! tenant's request log with what a client controls cut to size (a 64 KiB
//! request line must not become a 64 KiB log row): the path to 2 KiB and the
//! method to 32 bytes, each at a character boundary and marked with `…` when
//! cut. It reads the paths and the methods of a batch as two text columns
//! (two copies into its memory, not one per request), and ships a record
//! that needs no cut by its index, as measured, so only changed records
//! cross back to the node; the whole batch crosses in as records only when
//! one needs a cut.

wit_bindgen::generate!({ world: "builtin", path: "../../wit" });

use gatehouse::plugin::request_logs::{
    self, RequestFields, RequestRecord, Shipped, TextColumn, TextField,
};
use gatehouse::plugin::types::{Hooks, RequestChanges, ResponseChanges};

/// Longest path kept, in bytes.
const MAX_PATH: usize = 2048;
/// Longest method kept, in bytes.
const MAX_METHOD: usize = 32;

struct RequestLog;

/// The length of the longest text of a column, in bytes.
fn longest(column: &TextColumn) -> usize {
    let mut start = 0;
    let mut longest = 0;
    for &end in &column.ends {
        longest = longest.max(end.saturating_sub(start));
        start = end;
    }
    longest as usize
}

/// `text` cut to at most `max` bytes (the marker included), at a character
/// boundary.
fn cut(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

impl Guest for RequestLog {
    fn describe() -> PluginInfo {
        PluginInfo { name: "request-log".into(), version: "0.1.0".into(), hooks: Hooks::ON_LOG }
    }

    fn on_request(_request: Request) -> RequestAction {
        RequestAction::Proceed(RequestChanges {
            set_headers: vec![],
            remove_headers: vec![],
            rewrite_path: None,
            consumer_id: None,
            response_headers: vec![],
        })
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: vec![], remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {
        // Only the path and the method can need a cut: most batches cross
        // in as those two columns, and ship as measured.
        let paths = request_logs::finished_text(TextField::Path);
        let methods = request_logs::finished_text(TextField::Method);
        if longest(&paths) <= MAX_PATH && longest(&methods) <= MAX_METHOD {
            let measured: Vec<_> = (0..paths.ends.len() as u32)
                .map(Shipped::Measured)
                .collect();
            request_logs::ship(&measured);
            return;
        }
        let fits = |record: &RequestRecord| {
            record.path.len() <= MAX_PATH && record.method.len() <= MAX_METHOD
        };
        let shipped: Vec<_> = request_logs::finished(RequestFields::all())
            .into_iter()
            .zip(0..)
            .map(|(mut record, index)| {
                if fits(&record) {
                    return Shipped::Measured(index);
                }
                record.path = cut(record.path, MAX_PATH);
                record.method = cut(record.method, MAX_METHOD);
                Shipped::Changed(record)
            })
            .collect();
        request_logs::ship(&shipped);
    }
}

export!(RequestLog);
