from textkit.tokenize import ngrams, sentences, type_token_ratio, word_frequencies, words


def test_words_are_lowercased():
    assert words("Hello, World! It's fine.") == ["hello", "world", "it's", "fine"]


def test_sentences_split_on_punctuation():
    assert sentences("One. Two!  Three?") == ["One.", "Two!", "Three?"]


def test_word_frequencies_top():
    assert word_frequencies("a b a c a b", top=2) == [("a", 3), ("b", 2)]


def test_ngrams():
    assert list(ngrams(["a", "b", "c"], 2)) == [("a", "b"), ("b", "c")]


def test_type_token_ratio():
    assert type_token_ratio("x x y y") == 0.5
    assert type_token_ratio("") == 0.0
