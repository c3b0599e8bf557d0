//! Word shapes: the case and form of a word, which the uncased encoder cannot see (no cased BERT-family
//! model is available from the registries). A small closed set of classes, embedded by the model.
use super::words::is_url;

/// Number of shape classes (ids 0..COUNT).
pub const COUNT: u8 = 12;

/// The shape class of a word.
pub fn word_shape(word: &str) -> u8 {
    let mut chars = word.chars();
    let Some(first) = chars.next() else { return 0 };
    if is_url(word) {
        return 1;
    }
    if first == '@' && word.len() > 1 {
        return 2;
    }
    if first == '#' && word.len() > 1 {
        return 3;
    }
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    let digits = word.chars().filter(char::is_ascii_digit).count();
    if letters.is_empty() {
        return match (digits, word.chars().all(|c| c.is_ascii_punctuation())) {
            (d, _) if d > 0 => 4, // 2017, 3:30
            (_, true) => 5,       // . , !!
            _ => 6,               // emoji, symbols, lone no-break space
        };
    }
    if digits > 0 {
        return 7; // iPhone7, 4th
    }
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    match upper {
        0 => 8,                                            // lowercase
        n if n == letters.len() && letters.len() > 1 => 9, // UPPER
        1 if first.is_uppercase() => 10,                   // Capitalised
        _ => 11,                                           // mIxEd, McDonald
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let got: Vec<u8> = [
            "http://t.co/x",
            "@nba",
            "#NBA",
            "2017",
            "!!",
            "😂",
            "4th",
            "obama",
            "NBA",
            "Obama",
            "McDonald",
            "I",
        ]
        .iter()
        .map(|w| word_shape(w))
        .collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 10]);
        assert!(got.iter().all(|&c| c < COUNT));
    }
}
