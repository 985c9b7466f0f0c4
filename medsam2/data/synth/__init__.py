"""Domain-randomised synthetic training data (label maps painted at random, real images cut up).

See :mod:`medsam2.data.synth.cases` for the ``synth:...`` dataset string ``medsam2 train`` accepts.
"""

from medsam2.data.synth.cases import SyntheticCases, SynthSpec, generate_case, is_synthetic, parse_synth

__all__ = ["SynthSpec", "SyntheticCases", "generate_case", "is_synthetic", "parse_synth"]
