"""Language detection from the text: scripts decide CJK, function words decide Latin-script languages."""

import pytest

from pipelines.lang import detect_language


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("The government announced that the visa program for skilled workers will expand.", None, "en"),
        ("정부는 첨단산업 인재를 위한 톱티어 비자를 도입한다고 밝혔다.", "en", "ko"),
        ("高度専門職の認定件数は2023年に46,946件となった。", None, "ja"),
        ("国务院发布了新的人才签证政策。", None, "zh"),
        ("Le gouvernement a annoncé que le programme de visas pour les travailleurs sera élargi.", None, "fr"),
        ("Il governo ha annunciato che il programma per i lavoratori qualificati sarà esteso.", None, "it"),
        ("Pemerintah mengumumkan bahwa program visa untuk pekerja akan diperluas pada tahun ini.", None, "id"),
        ("E-7 H-1B 2025", "ko", "ko"),
        ("", "ja", "ja"),
        # Han only (no kana, no hangul): the CJK hint decides, else Chinese
        ("高度専門職 在留資格 認定件数", "ja", "ja"),
        ("高度専門職 在留資格 認定件数", "zh", "zh"),
        ("出入國管理法 施行令", "ko", "ko"),
        ("高度専門職 在留資格 認定件数", None, "zh"),
        ("高度専門職 在留資格 認定件数", "en", "zh"),
        # kana or hangul still outrank the hint
        ("高度専門職の認定", "zh", "ja"),
        ("외국인 고용 허가", "ja", "ko"),
    ],
)
def test_detect_language(text, hint, expected):
    assert detect_language(text, hint) == expected


def test_a_weak_guess_defers_to_the_declared_language():
    assert detect_language("Visa Global Talent Tech Nation", "en") == "en"
