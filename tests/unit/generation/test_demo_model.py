from generation import demo_model


def test_same_prompt_same_tokens():
    assert list(demo_model.generate("a prompt", 300)) == list(demo_model.generate("a prompt", 300))


def test_different_prompts_differ():
    assert list(demo_model.generate("one", 50)) != list(demo_model.generate("two", 50))


def test_a_longer_answer_extends_a_shorter_one():
    long = list(demo_model.generate("prefix", 1000))
    assert list(demo_model.generate("prefix", 10)) == long[:10]
    assert list(demo_model.generate("prefix", 300)) == long[:300]


def test_start_skips_exactly_the_tokens_before_it():
    full = list(demo_model.generate("resume", 700))
    for start in (0, 1, 255, 256, 257, 699, 700):
        assert list(demo_model.generate("resume", 700, start)) == full[start:]


def test_vocabulary_has_the_hard_cases():
    tokens = list(demo_model.generate("coverage", 2000))
    assert any(t.startswith(" ") for t in tokens)
    assert "\n" in tokens
    assert any(not t.isascii() for t in tokens)
    assert any(len(t.encode()) > len(t) + 2 for t in tokens)  # a 4-byte UTF-8 character


def test_complete_joins_the_tokens():
    assert demo_model.complete("x", 20) == "".join(demo_model.generate("x", 20))
