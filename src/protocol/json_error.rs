//! A simd-json parse error in words a user knows (`expected a JSON object at byte 0, found `n``)
//! instead of simd-json's internal names (`ExpectedNull at character 0 ('n')`), for the request
//! bodies and frames that must each be one JSON object.

use simd_json::{Error, ErrorType};

/// Says what was expected where. simd-json reports the byte where it stopped and the character
/// there; some of its errors name no position (a string left open) and some fit more than one
/// cause (a `}` with no value before it, or with data after it), and the text says so rather
/// than guess.
pub fn describe(e: &Error) -> String {
    let at = e.index();
    let found = shown(e.character());
    match e.error() {
        ErrorType::Eof => "expected a JSON object, found nothing".into(),
        // Stage 1 found no structure to end at: an unclosed string or a raw control character.
        ErrorType::Syntax if e.character().is_none() => "a string is not closed, or holds a raw \
             control character (write a newline or tab inside a string as \\n or \\t)"
            .into(),
        ErrorType::Syntax => {
            format!("unexpected end of input after byte {at}: an object or array is not closed")
        }
        // Only a value that is not an object or array can have trailing data at the top level.
        ErrorType::TrailingData => format!("expected a JSON object at byte {at}, found {found}"),
        ErrorType::ExpectedNull | ErrorType::ExpectedTrue | ErrorType::ExpectedFalse
        | ErrorType::InternalError
            if at == 0 =>
        {
            format!("expected a JSON object at byte 0, found {found}")
        }
        ErrorType::ExpectedNull => literal(at, "null"),
        ErrorType::ExpectedTrue => literal(at, "true"),
        ErrorType::ExpectedFalse => literal(at, "false"),
        ErrorType::InternalError => match e.character() {
            Some('}' | ']') => format!(
                "unexpected {found} at byte {at}: a value is missing before it, or more data \
                 follows the end of the JSON"
            ),
            Some(c) if c.is_ascii_alphabetic() || c == '\'' => format!(
                "expected a JSON value at byte {at}, found {found} (strings need double quotes)"
            ),
            _ => format!("expected a JSON value at byte {at}, found {found}"),
        },
        ErrorType::ExpectedObjectContent | ErrorType::ExpectedMapComma | ErrorType::ExpectedMapEnd => {
            format!(
                "unexpected {found} at byte {at} inside an object: expected a double-quoted key, \
                 `,` or `}}`"
            )
        }
        ErrorType::ExpectedObjectKey | ErrorType::KeyMustBeAString | ErrorType::BadKeyType => {
            let hint = if e.character() == Some('}') {
                " (no comma after the last member)"
            } else {
                ""
            };
            format!("expected a double-quoted key at byte {at}, found {found}{hint}")
        }
        ErrorType::ExpectedObjectColon => {
            format!("expected `:` after the key, at byte {at}, found {found}")
        }
        ErrorType::ExpectedArrayContent | ErrorType::ExpectedArrayComma => {
            format!("unexpected {found} at byte {at} inside an array: expected `,` or `]`")
        }
        ErrorType::InvalidNumber | ErrorType::InvalidExponent => {
            format!("invalid number before byte {at}")
        }
        ErrorType::InvalidEscape => format!(
            "invalid escape `\\{}` in a string (allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            e.character().unwrap_or('?')
        ),
        ErrorType::InvalidUnicodeEscape | ErrorType::InvalidUnicodeCodepoint => {
            "invalid \\u escape in a string (four hex digits; a surrogate needs its pair)".into()
        }
        ErrorType::InvalidUtf8 => "the text is not valid UTF-8".into(),
        ErrorType::DepthLimitExceeded => "objects and arrays are nested too deeply".into(),
        ErrorType::InputTooLarge => "the input is too large".into(),
        _ => format!("malformed JSON at byte {at}"),
    }
}

/// `found` of a message: the character in backticks, or what kind of character it is.
fn shown(c: Option<char>) -> String {
    match c {
        None => "the end of the input".into(),
        Some(c) if c.is_ascii_graphic() => format!("`{c}`"),
        Some(' ') => "a space".into(),
        // simd-json passes the byte it stopped at as a char, so anything past ASCII is the first
        // byte of a UTF-8 sequence, not the character itself.
        Some(c) if !c.is_ascii() => "a non-ASCII character".into(),
        Some(c) => format!("the control character {:?}", c),
    }
}

/// A word that starts like a literal but is not one.
fn literal(at: usize, word: &str) -> String {
    let first = word.chars().next().unwrap_or('?');
    format!(
        "invalid value at byte {at}: only `{word}` starts with `{first}` (strings need double quotes)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        let said = match simd_json::to_borrowed_value(&mut bytes) {
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
            Err(e) => describe(&e),
        };
        said
    }

    #[test]
    fn each_error_says_what_was_expected_where() {
        let cases = [
            ("not json", "expected a JSON object at byte 0, found `n`"),
            ("hello", "expected a JSON object at byte 0, found `h`"),
            ("]", "expected a JSON object at byte 0, found `]`"),
            ("1 2", "expected a JSON object at byte 0, found `1`"),
            ("", "expected a JSON object, found nothing"),
            (
                r#"{"type":"#,
                "unexpected end of input after byte 7: an object or array is not closed",
            ),
            (
                r#"{"a":"x"#,
                "a string is not closed, or holds a raw control character (write a newline or \
                 tab inside a string as \\n or \\t)",
            ),
            (
                r#"{"a":nul}"#,
                "invalid value at byte 5: only `null` starts with `n` (strings need double quotes)",
            ),
            (
                r#"{"a":hello}"#,
                "expected a JSON value at byte 5, found `h` (strings need double quotes)",
            ),
            (r#"{"a":+1}"#, "expected a JSON value at byte 5, found `+`"),
            (
                r#"{"a":1} x"#,
                "unexpected `}` at byte 6: a value is missing before it, or more data follows \
                 the end of the JSON",
            ),
            (
                "{a:1}",
                "unexpected `a` at byte 1 inside an object: expected a double-quoted key, `,` or `}`",
            ),
            (
                r#"{"a":1,}"#,
                "expected a double-quoted key at byte 7, found `}` (no comma after the last member)",
            ),
            (
                r#"{"a" 1}"#,
                "expected `:` after the key, at byte 5, found `1`",
            ),
            (
                r#"{"a":[1 2]}"#,
                "unexpected `2` at byte 8 inside an array: expected `,` or `]`",
            ),
            (r#"{"a":01}"#, "invalid number before byte 6"),
            (
                r#"{"a":"\q"}"#,
                "invalid escape `\\q` in a string (allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            ),
            (
                r#"{"a":"\ud800"}"#,
                "invalid \\u escape in a string (four hex digits; a surrogate needs its pair)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(said(input), expected, "{input:?}");
        }
    }

    #[test]
    fn characters_are_shown_as_a_reader_sees_them() {
        assert_eq!(shown(Some('x')), "`x`");
        assert_eq!(shown(Some(' ')), "a space");
        assert_eq!(shown(Some('\u{1}')), "the control character '\\u{1}'");
        assert_eq!(shown(Some('Ã')), "a non-ASCII character");
        assert_eq!(shown(None), "the end of the input");
    }
}
