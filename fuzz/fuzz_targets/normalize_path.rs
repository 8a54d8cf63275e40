//! Path normalization never panics, and what it returns is a fixed point
//! with no way left to smuggle a different path past the matcher.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = snapshot::normalize_path(input) else {
        return;
    };
    assert!(once.starts_with('/'), "{input:?} -> {once:?}");
    assert!(!once.contains("//"), "{input:?} -> {once:?}");
    for segment in once.split('/') {
        assert!(segment != "." && segment != "..", "{input:?} -> {once:?}");
    }
    let lower = once.to_ascii_lowercase();
    assert!(!lower.contains("%2f") && !lower.contains("%5c") && !once.contains('\\'), "{input:?} -> {once:?}");
    // Idempotent: normalizing again changes nothing and borrows.
    let twice = snapshot::normalize_path(&once).expect("a normalized path stays valid");
    assert_eq!(twice, once, "{input:?}");
    assert!(matches!(twice, std::borrow::Cow::Borrowed(_)));
});
