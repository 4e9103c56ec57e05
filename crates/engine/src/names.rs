//! docker-style generated names: adjective_surname.

const LEFT: &[&str] = &[
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful", "blissful",
    "bold", "boring", "brave", "busy", "charming", "clever", "compassionate", "competent", "confident",
    "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic",
    "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant",
    "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy",
    "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting",
    "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing",
    "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful",
    "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed",
    "reverent", "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied",
    "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant",
    "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
];

const RIGHT: &[&str] = &[
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik", "bell", "bhabha",
    "blackwell", "bohr", "booth", "bose", "brahmagupta", "brown", "burnell", "cannon", "carson", "cerf",
    "chandrasekhar", "chaplygin", "chatelet", "clarke", "colden", "cori", "curie", "darwin", "davinci",
    "dijkstra", "dirac", "driscoll", "easley", "edison", "einstein", "elion", "engelbart", "euclid", "euler",
    "faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg", "goldstine",
    "goodall", "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hopper", "hypatia", "jackson",
    "jang", "jennings", "johnson", "kalam", "kepler", "khorana", "knuth", "kowalevski", "lalande", "lamarr",
    "leakey", "leavitt", "lovelace", "lumiere", "mayer", "mccarthy", "mclean", "meitner", "mendel",
    "merkle", "mirzakhani", "montalcini", "morse", "newton", "nobel", "noether", "pascal", "pasteur",
    "payne", "perlman", "pike", "poincare", "ptolemy", "raman", "ritchie", "rosalind", "sammet", "shannon",
    "shirley", "sinoussi", "stonebraker", "swanson", "tesla", "thompson", "torvalds", "turing", "varahamihira",
    "visvesvaraya", "wescoff", "wilbur", "williams", "wing", "wozniak", "wright", "yalow", "yonath",
];

/// A name from `seed` (random bytes); `retry` > 0 appends a digit as docker does on collision.
pub fn generate(seed: u64, retry: u32) -> String {
    let l = LEFT[(seed % LEFT.len() as u64) as usize];
    let r = RIGHT[((seed >> 16) % RIGHT.len() as u64) as usize];
    if retry == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{}", (seed >> 32) % 10 + retry as u64)
    }
}

/// docker's rule for user-given names: [a-zA-Z0-9][a-zA-Z0-9_.-]+
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}
