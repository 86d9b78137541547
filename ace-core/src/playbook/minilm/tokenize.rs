//! BERT's uncased tokenizer, as the model's `tokenizer.json` describes it (`BertNormalizer`,
//! `BertPreTokenizer`, `WordPiece`): what Hugging Face `tokenizers` does, step for step, and
//! checked against it on a few hundred sentences (`ace-core/tests/minilm.rs`).
//!
//! 1. Clean: drop NUL, U+FFFD and other control or format characters (General_Category C*,
//!    except tab, newline and carriage return); every white-space character becomes a space.
//! 2. Set CJK ideographs apart with spaces.
//! 3. Strip accents: canonical decomposition (NFD), then drop non-spacing marks (Mn).
//! 4. Lower-case.
//! 5. Split on white space; every punctuation character (ASCII punctuation or P*) is a word.
//! 6. WordPiece: the longest vocabulary entry from the start of the word, then `##` pieces; a
//!    word with no split, or of more than 100 characters, is `[UNK]`.
//! 7. `[CLS]` first and `[SEP]` last, at most `max_tokens` in all.
//!
//! NFD and the general categories come from ICU4X (`icu_normalizer`, `icu_properties`), whose
//! data the bindings already carry (`url` reads host names through it).

use hashbrown::HashMap;
use icu_normalizer::DecomposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::{GeneralCategory, GeneralCategoryGroup};

use crate::error::{Error, Result};

/// Longer words are one `[UNK]` (the `max_input_chars_per_word` of BERT's WordPiece).
const MAX_WORD_CHARS: usize = 100;

/// The vocabulary and the special tokens of an uncased BERT model.
pub(super) struct Tokenizer {
    vocab: HashMap<String, u32>,
    /// Lines of `vocab.txt`: one more than the largest id (a repeated line keeps its first id).
    lines: usize,
    cls: u32,
    sep: u32,
    unk: u32,
    /// The most tokens a text becomes, `[CLS]` and `[SEP]` included.
    max_tokens: usize,
}

impl Tokenizer {
    /// Reads `vocab.txt` (one token a line, the line number its id).
    pub(super) fn new(vocab_txt: &str, max_tokens: usize) -> Result<Self> {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut lines = 0;
        for (i, w) in vocab_txt.lines().enumerate() {
            vocab.entry(w.to_owned()).or_insert(i as u32);
            lines = i + 1;
        }
        let id =
            |t: &str| vocab.get(t).copied().ok_or_else(|| Error::invalid("model", format!("vocab.txt has no {t}")));
        let (cls, sep, unk) = (id("[CLS]")?, id("[SEP]")?, id("[UNK]")?);
        Ok(Tokenizer { vocab, lines, cls, sep, unk, max_tokens: max_tokens.max(2) })
    }

    /// The size of the vocabulary: the rows of the word embeddings.
    pub(super) fn vocab_len(&self) -> usize {
        self.lines
    }

    /// Token ids of `text`: `[CLS]`, WordPiece tokens, `[SEP]`, cut to the model's length.
    pub(super) fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let room = self.max_tokens - 1;
        let (mut pieces, mut piece) = (Vec::new(), String::new());
        for word in words(&normalise(text)) {
            if ids.len() >= room {
                break;
            }
            self.word_pieces(word, &mut pieces, &mut piece);
            ids.extend(pieces.iter().take(room - ids.len()));
        }
        ids.push(self.sep);
        ids
    }

    /// The WordPiece ids of one word into `out`: `[UNK]` alone when it has no split.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>, piece: &mut String) {
        out.clear();
        if word.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let id = loop {
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(piece.as_str()) {
                    break id;
                }
                end = word[..end].char_indices().next_back().map_or(start, |(i, _)| i);
                if end <= start {
                    out.clear();
                    out.push(self.unk);
                    return;
                }
            };
            out.push(id);
            start = end;
        }
    }
}

/// Steps 1 to 4: the cleaned, accent-stripped, lower-cased text.
fn normalise(text: &str) -> String {
    let mut spaced = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if c.is_whitespace() {
            spaced.push(' ');
        } else if is_cjk(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    let mut out = String::with_capacity(spaced.len());
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    for c in nfd.normalize_iter(spaced.chars()).filter(|&c| category(c) != GeneralCategory::NonspacingMark) {
        out.extend(c.to_lowercase());
    }
    out
}

/// Step 5: words and punctuation characters, in order.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let mut start = 0;
        for (i, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if start < i {
                    out.push(&chunk[start..i]);
                }
                out.push(&chunk[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        if start < chunk.len() {
            out.push(&chunk[start..]);
        }
    }
    out
}

fn category(c: char) -> GeneralCategory {
    CodePointMapData::<GeneralCategory>::new().get(c)
}

/// Control and format characters (C*), but not the white space BERT keeps.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && GeneralCategoryGroup::Other.contains(category(c))
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || GeneralCategoryGroup::Punctuation.contains(category(c))
}

fn is_cjk(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let vocab =
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\nit\n'\ns\nso\nsun\n##ny\noutside\n!\ncafe\nnaive\n中\n文\nun\n##aff\n##able";
        Tokenizer::new(vocab, 512).unwrap()
    }

    #[test]
    fn words_are_cleaned_lower_cased_stripped_of_accents_and_split_at_punctuation() {
        assert_eq!(words(&normalise("It's so SUNNY outside!")), ["it", "'", "s", "so", "sunny", "outside", "!"]);
        assert_eq!(words(&normalise("a\tb\u{7}c 中文")), ["a", "bc", "中", "文"]);
        assert_eq!(words(&normalise("Café NAÏVE Ångström")), ["cafe", "naive", "angstrom"]);
        assert_eq!(words(&normalise("“quoted”…")), ["“", "quoted", "”", "…"], "Unicode punctuation is a word");
        assert_eq!(words(&normalise("€42")), ["€42"], "a currency sign is a symbol, not punctuation");
        assert_eq!(words(&normalise("zero\u{200b}width")), ["zerowidth"], "format characters are dropped");
    }

    #[test]
    fn word_pieces_take_the_longest_match_and_an_unsplittable_word_is_one_unknown() {
        let t = tokenizer();
        assert_eq!(t.encode("It's so sunny outside!"), [2, 4, 5, 6, 7, 8, 9, 10, 11, 3]);
        assert_eq!(t.encode("Unaffable CAFÉ"), [2, 16, 17, 18, 12, 3]);
        assert_eq!(t.encode("unaffablex"), [2, 1, 3], "one unknown, not the pieces before it");
        assert_eq!(t.encode(&"a".repeat(101)), [2, 1, 3]);
    }

    #[test]
    fn the_text_is_cut_to_the_models_length_with_the_separator_kept() {
        let t = Tokenizer::new("[PAD]\n[UNK]\n[CLS]\n[SEP]\nso", 4).unwrap();
        assert_eq!(t.encode("so so so so so"), [2, 4, 4, 3]);
        assert_eq!(t.encode(""), [2, 3]);
    }

    #[test]
    fn a_repeated_vocabulary_line_keeps_its_first_id_and_the_size_counts_lines() {
        let t = Tokenizer::new("[PAD]\n[UNK]\n[CLS]\n[SEP]\nso\nso\nfar", 8).unwrap();
        assert_eq!(t.vocab_len(), 7, "the embeddings have a row per line");
        assert_eq!(t.encode("so far"), [2, 4, 6, 3]);
        assert_eq!(Tokenizer::new("[PAD]\n[CLS]\n[SEP]", 8).err().map(|e| e.code()), Some("invalid_input"), "no [UNK]");
    }
}
