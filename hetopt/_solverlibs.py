"""OR-Tools and PuLP, imported in the one order that is safe (the only place hetopt imports PuLP).

PuLP pre-loads highspy with ``RTLD_GLOBAL``; a highspy whose HiGHS differs from the one bundled
in ortools then crashes the process when ortools solves (google/or-tools#5246; hetopt pins
highspy==1.12.0, the HiGHS inside ortools 9.15, and imports ortools first as a second guard).
What must come first is OR-Tools' native library (``libortools`` and the ``libhighs`` bundled
with it), not its Python layer: this module loads ``cp_model_helper``, the extension linked
against both, which takes about a fifth of the time of ``cp_model`` and its protobuf classes
(the CP-SAT backend imports ``cp_model`` itself, when it is used).
Nothing imports PuLP at ``import hetopt``: a module that needs it writes
``from hetopt._solverlibs import pulp``, so loading PuLP always loads OR-Tools' native library
first, and only when a MILP is built or solved. ``tests/test_import_order.py`` checks both: that no
other module imports ``pulp`` itself, and that every command that solves with PuLP has ortools
loaded before it.

Examples
--------
>>> import sys
>>> from hetopt._solverlibs import pulp
>>> loaded = list(sys.modules)
>>> loaded.index("ortools.sat.python.cp_model_helper") < loaded.index("pulp")
True
"""

from ortools.sat.python import cp_model_helper  # isort: skip
import pulp  # isort: skip

__all__ = ["cp_model_helper", "pulp"]
