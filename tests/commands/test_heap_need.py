"""What `prune8 model info`, `run` and `prune` charge a layer's prune (prune8_host.heap_law):
the layer's own measured law, plus what each further layer the model stores adds, by
scorer and pattern, as docs/heap.md says."""

from prune8_host.heap_law import HeapFigures
from prune8_host.twin.layer import PruneOptions


def flat(base):
    return {"ram": {"base": base, "rows": 0.0, "cols": 0.0, "tiles": 0.0}}


PATTERNS = ("one-shot", "channel", "nm", "steps1", "steps2", "channel-steps1",
            "channel-steps2")
LAWS = {"magnitude": {p: flat(70_000 + 100 * i) for i, p in enumerate(PATTERNS)},
        "mincut": {p: flat(71_000) for p in PATTERNS}}
OTHERS = {"per_layer": {"magnitude": {"one-shot": 700, "channel": 720, "nm": 700,
                                      "steps1": 900, "steps2": 950, "channel-steps1": 930,
                                      "channel-steps2": 990},
                        "mincut": {"one-shot": 750.5}},
          "per_name_byte": 1.5}
FIG = HeapFigures(2048, 64, 40_000, LAWS, None, OTHERS)


def need(method, others=0, name_bytes=0, **options):
    return FIG.need(8, 8, PruneOptions(method, **options), others, name_bytes).bytes


def test_a_layer_alone_is_its_law():
    assert need("magnitude") == 70_000
    assert need("magnitude", steps=1) == 70_300


def test_each_further_layer_adds_its_scorer_s_share_and_its_name_s():
    assert need("magnitude", 10, 30) == 70_000 + 7_000 + 45
    assert need("mincut", 3) == 71_000 + 2_252         # 3 x 750.5, rounded up
    # a pattern adds what it added to magnitude's share: per channel 20 more a layer
    assert need("mincut", 10, scope="channel") == 71_000 + 7_705


def test_a_gradual_prune_charges_its_steps_as_the_layer_law_does():
    # the layer: steps1's law, and twice what steps2's added (70,300 + 2 x 100); each
    # other layer: one shot's 700, the first step's 200 more, 50 for each step after it
    assert need("magnitude", 4, steps=3) == 70_500 + 4 * (700 + 200 + 2 * 50)
    # per channel: relative to magnitude's one shot, 230 for the first, 60 for each more
    assert need("magnitude", 1, steps=2, scope="channel") - need("magnitude", 0, steps=2,
                                                                  scope="channel") == 990


def test_no_other_layers_figure_charges_nothing_more():
    bare = HeapFigures(2048, 64, 40_000, LAWS)
    assert bare.need(8, 8, PruneOptions("magnitude"), 27, 300).bytes == 70_000
