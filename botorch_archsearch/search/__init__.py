r"""The compression search: ESNAC (Algorithm 1) and random search, the run journal, the report."""

from botorch_archsearch.search.config import (
    SEARCH_METHODS,
    AcquisitionConfig,
    CompressConfig,
    DatasetConfig,
    EvaluationConfig,
    FinalConfig,
    KernelConfig,
    RewardConfig,
    SearchSettings,
    TeacherConfig,
    check_config,
    upgrade_saved_config,
)
from botorch_archsearch.search.journal import JOURNAL_NAME, Journal, JournalError, read_journal, repair_journal
from botorch_archsearch.search.loop import SearchResult, check_teacher_input, compress

__all__ = [
    "AcquisitionConfig",
    "CompressConfig",
    "DatasetConfig",
    "EvaluationConfig",
    "FinalConfig",
    "JOURNAL_NAME",
    "Journal",
    "JournalError",
    "KernelConfig",
    "RewardConfig",
    "SEARCH_METHODS",
    "SearchResult",
    "SearchSettings",
    "TeacherConfig",
    "check_config",
    "check_teacher_input",
    "compress",
    "read_journal",
    "repair_journal",
    "upgrade_saved_config",
]
