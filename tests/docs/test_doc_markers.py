"""The marker grammar of the doc-test runner (tests/docs/conftest.py), on hand-written pages:
what is grouped, what runs after what, and which mistakes are reported."""

RUN = '<!-- doc-test: {} -->\n```{}\n{}```\n'


def test_groups_in_order_skips_with_reasons_and_after_chains(docs):
    page = (RUN.format('a', 'bash', 'echo 1\n') + 'text\n' + RUN.format('a', 'bash', 'echo 2\n')
            + RUN.format('b (after a)', 'python', "print(1)  # 1\n")
            + RUN.format('c (after b)', 'bash', 'echo 3\n')
            + RUN.format('skip (needs a GPU (CUDA))', 'bash', 'nvidia-smi\n'))
    groups, skips, problems = docs.collect({'docs/x.md': page})
    assert not problems
    assert [code for _, code in groups['a'].blocks] == ['echo 1\n', 'echo 2\n']
    assert groups['b'].after == 'a' and groups['c'].after == 'b'
    assert [(s.where, s.reason) for s in skips] == [('docs/x.md:18', 'needs a GPU (CUDA)')]
    assert docs.chains(groups) == {'a': ['a', 'b', 'c']}


def test_one_name_on_two_pages_must_hold_the_same_commands(docs):
    same = RUN.format('demo', 'bash', 'python tools/train.py X\n')
    groups, _, problems = docs.collect({'README.md': same, 'docs/a.md': same})
    assert not problems and groups['demo'].files == ['README.md', 'docs/a.md']
    other = RUN.format('demo', 'bash', 'python tools/train.py Y\n')
    _, _, problems = docs.collect({'README.md': same, 'docs/a.md': other})
    assert len(problems) == 1 and 'docs/a.md: group demo differs' in problems[0]


def test_marker_mistakes_are_reported(docs):
    pages = {'a.md': RUN.format('skip', 'bash', 'x\n') + RUN.format('b (before c)', 'bash', 'y\n')
             + RUN.format('d (after nowhere)', 'bash', 'z\n')
             + RUN.format('e (after f)', 'bash', 'z\n') + RUN.format('f (after e)', 'bash', 'z\n')}
    _, _, problems = docs.collect(pages)
    text = '\n'.join(problems)
    assert 'a.md:1: "doc-test: skip" needs a (reason)' in text
    assert 'unknown marker argument (before c)' in text
    assert 'group d runs after nowhere, which no doc defines' in text
    assert 'group e: its (after ...) groups form a cycle' in text


def test_unmarked_shell_blocks_are_found_and_text_blocks_are_not(docs):
    page = ('```bash\npython tools/train.py X\n```\n\n```text\nusage: ...\n```\n\n'
            + RUN.format('ok', 'bash', 'echo\n'))
    assert docs.unmarked_in({'docs/x.md': page}) == ['docs/x.md:1']


def test_expected_prints_and_comment_stripping(docs):
    code = "x = 1\nprint(x, 'b')  # 1 ... b\nprint(2)\n"
    assert docs.expected_prints(code) == ['1 ... b']
    assert docs.matches('1 ... b', "1 'b'") and not docs.matches('1 ... c', "1 'b'")
    assert docs.shell_lines('python a.py   # note\n\n  python b.py\n') == ['python a.py',
                                                                        'python b.py']
