"""pytest runs every notebook (nbval) as the instructor wrote it, graded: an exercise check that fails raises.

For a learner, `mt.exercise` only prints "not yet"; with MINITRANSFORMER_GRADING=1 (set here for the kernels
that nbval starts) it raises, as under nbgrader's autograde, so a wrong solution fails the test run.
"""

import os

os.environ["MINITRANSFORMER_GRADING"] = "1"
