//! Image captions in PGIM's format (its `BLIP2_15.txt`, `BLIP2_17.txt`): one line per image,
//! `<image file name> :<caption>`, e.g. `16_05_01_367.jpg :nolan k bushnell on twitter`. Blank lines
//! are skipped. Like the tweet readers, it never stops at a bad line: each becomes a diagnostic.
use std::collections::HashMap;
use std::path::Path;

use super::{Diagnostic, Limits, Line, lines, utf8_message};
use crate::error::Result;

/// Between an image's file name and its caption.
const SEPARATOR: &str = " :";

/// One caption as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCaption {
    /// The image's file name (`16_05_01_367.jpg`), matched against each tweet's image.
    pub image: String,
    pub text: String,
    /// 1-based line.
    pub line: usize,
}

/// Everything read from a captions file.
#[derive(Debug, Default)]
pub struct ParsedCaptions {
    pub captions: Vec<RawCaption>,
    /// Lines left out: each would fail the run unless `--on-error skip`.
    pub rejected: Vec<Diagnostic>,
    /// Lines kept but worth a look: an image whose caption is empty (`BLIP2_15.txt` has two), which
    /// then has none.
    pub warnings: Vec<Diagnostic>,
}

impl ParsedCaptions {
    /// Captions by image file name.
    pub fn by_image(&self) -> HashMap<&str, &RawCaption> {
        self.captions
            .iter()
            .map(|c| (c.image.as_str(), c))
            .collect()
    }
}

/// Reads the captions file at `path`. Only I/O failures are errors.
pub fn read(path: &Path, limits: &Limits) -> Result<ParsedCaptions> {
    let mut out = ParsedCaptions::default();
    let mut first_seen: HashMap<String, (usize, String)> = HashMap::new();
    for line in lines(path, limits.max_record_bytes)? {
        let line = line?;
        let n = line.number;
        let diagnostic = |record: Option<&str>, message: String| Diagnostic {
            path: path.to_owned(),
            line: n,
            record: record.map(str::to_owned),
            message,
        };
        match parse_line(&line, limits, &first_seen) {
            Parsed::Blank | Parsed::Repeated => {}
            Parsed::Bad(record, message) => out.rejected.push(diagnostic(record, message)),
            Parsed::Empty(image) => out.warnings.push(diagnostic(
                Some(image),
                "empty caption: the image has none".to_owned(),
            )),
            Parsed::Caption(image, text) => {
                first_seen.insert(image.to_owned(), (n, text.to_owned()));
                out.captions.push(RawCaption {
                    image: image.to_owned(),
                    text: text.to_owned(),
                    line: n,
                });
            }
        }
    }
    Ok(out)
}

/// What one line of a captions file holds.
enum Parsed<'a> {
    Blank,
    /// The same image and caption as an earlier line: nothing new.
    Repeated,
    /// A bad line: the image, when it could be read, and what is wrong.
    Bad(Option<&'a str>, String),
    /// An image with an empty caption.
    Empty(&'a str),
    Caption(&'a str, &'a str),
}

fn parse_line<'a>(
    line: &'a Line,
    limits: &Limits,
    first_seen: &HashMap<String, (usize, String)>,
) -> Parsed<'a> {
    if let Some(bytes) = line.too_long {
        return Parsed::Bad(None, limits.too_long(bytes));
    }
    let text = match std::str::from_utf8(&line.bytes) {
        Ok(text) => text,
        Err(e) => return Parsed::Bad(None, utf8_message(&e)),
    };
    if text.trim().is_empty() {
        return Parsed::Blank;
    }
    let Some((image, caption)) = text.split_once(SEPARATOR) else {
        return Parsed::Bad(
            None,
            format!("expected `<image file> :<caption>`, found {text:?}"),
        );
    };
    let (image, caption) = (image.trim(), caption.trim());
    if image.is_empty() || image.contains(char::is_whitespace) {
        return Parsed::Bad(
            None,
            format!("{image:?} is not an image file name (expected `<image file> :<caption>`)"),
        );
    }
    if caption.is_empty() {
        return Parsed::Empty(image);
    }
    match first_seen.get(image) {
        Some((_, seen)) if seen == caption => Parsed::Repeated,
        Some((first, _)) => Parsed::Bad(
            Some(image),
            format!("a second, different caption for this image (first at line {first})"),
        ),
        None => Parsed::Caption(image, caption),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn parse(content: &[u8]) -> ParsedCaptions {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        read(file.path(), &Limits::default()).unwrap()
    }

    #[test]
    fn reads_pgim_lines() {
        let parsed = parse(
            b"\xEF\xBB\xBF16_05_01_367.jpg :nolan k bushnell on twitter\n\n17_06_9315.jpg :a man : at a table\r\n",
        );
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(
            parsed.captions,
            vec![
                RawCaption {
                    image: "16_05_01_367.jpg".into(),
                    text: "nolan k bushnell on twitter".into(),
                    line: 1,
                },
                RawCaption {
                    image: "17_06_9315.jpg".into(),
                    text: "a man : at a table".into(),
                    line: 3,
                },
            ]
        );
    }

    #[test]
    fn bad_lines_say_why_and_the_others_are_kept() {
        let parsed = parse(
            b"1.jpg a dog\n2.jpg :\n :a cat\n3.jpg :a cat\n3.jpg :a cat\n3.jpg :a dog\n4.jpg :\xFF\n5.jpg :ok\n",
        );
        let got: Vec<_> = parsed
            .rejected
            .iter()
            .map(|d| format!("{}: {}", d.line, d.message))
            .collect();
        assert_eq!(
            got,
            vec![
                "1: expected `<image file> :<caption>`, found \"1.jpg a dog\"",
                "3: \"\" is not an image file name (expected `<image file> :<caption>`)",
                "6: a second, different caption for this image (first at line 4)",
                "7: invalid UTF-8 at byte 8 of the line",
            ]
        );
        let kept: Vec<_> = parsed.captions.iter().map(|c| c.image.as_str()).collect();
        assert_eq!(kept, vec!["3.jpg", "5.jpg"]);
        // An empty caption is no caption: a warning, not a bad line (BLIP2_15.txt has two).
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].line, 2);
    }
}
