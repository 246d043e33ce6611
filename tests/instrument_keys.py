"""Scoring keys transcribed by hand from ../shared/reference/instruments.md (never read from the
YAML definitions), shared by the registry and scoring tests.

EXPECTED[id] = (prefix, n_items, scale_min, scale_max, integer_scale, reverse, subscales)
"""

# Independent transcription of ../shared/reference/instruments.md (section numbers in comments).
EXPECTED = {
    # id: (prefix, n_items, min, max, integer, reverse, subscales)
    "wai-sr": (
        "wai_sr",
        12,
        1,
        5,
        True,
        (),
        {"goal": (4, 6, 8, 11), "task": (1, 2, 10, 12), "bond": (3, 5, 7, 9)},
    ),  # s3
    "wai": (
        "wai",
        36,
        1,
        7,
        True,
        (1, 3, 7, 9, 10, 11, 12, 15, 20, 27, 29, 31, 33, 34),
        {
            "goal": (3, 6, 9, 10, 12, 14, 22, 25, 27, 30, 32, 34),
            "task": (2, 4, 7, 11, 13, 15, 16, 18, 24, 31, 33, 35),
            "bond": (1, 5, 8, 17, 19, 20, 21, 23, 26, 28, 29, 36),
        },
    ),  # s1
    "wai-s": (
        "wai_s",
        12,
        1,
        7,
        True,
        (4, 10),
        {"goal": (4, 6, 10, 11), "task": (1, 2, 8, 12), "bond": (3, 5, 7, 9)},
    ),  # s2
    "haq-ii": ("haq", 19, 1, 6, True, (4, 8, 11, 16, 19), {}),  # s9
    "srs": ("srs", 4, 0, 10, False, (), {}),  # s4
    "ors": ("ors", 4, 0, 10, False, (), {}),  # s4
    "oq-45.2": (
        "oq",
        45,
        0,
        4,
        True,
        (1, 12, 13, 20, 21, 24, 31, 37, 43),
        {
            "sd": (
                2,
                3,
                5,
                6,
                8,
                9,
                10,
                11,
                13,
                15,
                22,
                23,
                24,
                25,
                27,
                29,
                31,
                33,
                34,
                35,
                36,
                40,
                41,
                42,
                45,
            ),
            "ir": (1, 7, 16, 17, 18, 19, 20, 26, 30, 37, 43),
            "sr": (4, 12, 14, 21, 28, 32, 38, 39, 44),
        },
    ),  # s5
    "phq-9": ("phq9", 9, 0, 3, True, (), {}),  # s6
    "gad-7": ("gad7", 7, 0, 3, True, (), {}),  # s7
    "core-om": (
        "core_om",
        34,
        0,
        4,
        True,
        (3, 4, 7, 12, 19, 21, 31, 32),
        {
            "wellbeing": (4, 14, 17, 31),
            "problems": (2, 5, 8, 11, 13, 15, 18, 20, 23, 27, 28, 30),
            "functioning": (1, 3, 7, 10, 12, 19, 21, 25, 26, 29, 32, 33),
            "risk": (6, 9, 16, 22, 24, 34),
            "non_risk": tuple(i for i in range(1, 35) if i not in (6, 9, 16, 22, 24, 34)),
        },
    ),  # s8
    "core-10": ("core10", 10, 0, 4, True, (2, 3), {}),  # s8
}
