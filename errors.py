"""How a run fails, one class per way, shared by every script and the plumbing below them (the
command line, the files, the records) so that none of those has to import another for it:
bad input (one line on stderr, exit code 2), a run that diverged or never learned (exit 3), a
Ctrl-C that saved the state (exit 130, with the command that resumes). `records.report_errors`
turns each into its line and exit code, and runs CLEANUPS however a run ends.
"""

CLEANUPS = []  # what a script's main undoes however it ends (checkpoint: its output locks)


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class Diverged(Exception):
    """The run blew up: a non-finite loss, or a finite one that undid the training."""
    kind = "diverged"


class NeverLearned(Diverged):
    """The run never learned: still at chance after its first epoch, or a hidden layer dead."""
    kind = "never learned"


class Interrupted(Exception):
    """Ctrl-C during training: the state was checkpointed after the current step."""
    def __init__(self, epoch, step, path):  # numbered as the progress lines and a resume are
        super().__init__(f"interrupted in epoch {epoch} after step {step}; the training state "
                         f"is saved in {path}")
