"""alliance_lib: scoring, trajectories, change events and study reports for alliance research.

Examples
--------
>>> import alliance_lib as al
>>> isinstance(al.__version__, str)
True
"""

from alliance_lib import plots, privacy
from alliance_lib._version import __version__
from alliance_lib.alliance_outcome import *
from alliance_lib.change import *
from alliance_lib.errors import AllianceError, DataError, DefinitionError, ReportError
from alliance_lib.io import *
from alliance_lib.norms import *
from alliance_lib.qualtrics import read_qualtrics
from alliance_lib.raters import *
from alliance_lib.redcap import read_redcap
from alliance_lib.registry import *
from alliance_lib.reliability import *
from alliance_lib.report import run_report
from alliance_lib.ruptures import *
from alliance_lib.scoring import *
from alliance_lib.simulate import *
from alliance_lib.sources import pivot_coded_scores
from alliance_lib.study import Study, StudyError, load_study
from alliance_lib.trajectories import *
from alliance_lib.validate import *
from alliance_lib.waves import WaveData, prepare_wave
