"""Teacher/student networks (Sharma & Kaplan 3.1, A.2, A.3): random and vetted teachers,
students, training schedules, the resumable sweep, its report and the ``idest reproduce`` command.
"""

from scaling.teacher_student._report import (
    FeatureSummary,
    TeacherStudentSummary,
    report_markdown,
    summarize,
    write_report,
)
from scaling.teacher_student._reproduce import (
    reproduce,
    reproduction_config,
)
from scaling.teacher_student._student import (
    BIAS_STD,
    make_student,
    parameter_count,
    student_seed,
    student_widths,
)
from scaling.teacher_student._sweep import (
    SweepConfig,
    SweepOutcome,
    check_committable,
    checkpoint_path,
    format_curve,
    git_commit,
    parse_curve,
    read_results,
    run_sweep,
)
from scaling.teacher_student._teacher import (
    LOSSES,
    VARIANTS,
    LatentGaussianTeacher,
    ProductTeacher,
    RandomTeacher,
    latent_gaussian_teacher,
    random_teacher,
    vetted_teacher,
    vetting_score,
)
from scaling.teacher_student._train import (
    CONVERGENCE_TOLERANCE,
    CONVERGENCE_WINDOW,
    DTYPES,
    ENGINES,
    SCHEDULES,
    ActivationID,
    Phase,
    Schedule,
    StudentResult,
    activation_dimension,
    convergence,
    convergence_start,
    curve_steps,
    final_hidden_activations,
    get_schedule,
    train_students,
)

__all__ = [
    "ActivationID", "CONVERGENCE_TOLERANCE", "CONVERGENCE_WINDOW", "DTYPES", "ENGINES",
    "checkpoint_path", "convergence", "convergence_start", "curve_steps", "format_curve",
    "check_committable", "git_commit", "parse_curve",
    "BIAS_STD", "FeatureSummary", "LOSSES", "LatentGaussianTeacher", "Phase", "ProductTeacher",
    "RandomTeacher", "SCHEDULES", "Schedule", "StudentResult", "SweepConfig", "SweepOutcome",
    "TeacherStudentSummary", "VARIANTS", "activation_dimension", "final_hidden_activations",
    "get_schedule", "latent_gaussian_teacher", "make_student", "parameter_count",
    "random_teacher", "read_results", "report_markdown", "reproduce", "reproduction_config",
    "run_sweep", "student_seed", "student_widths", "summarize", "train_students",
    "vetted_teacher", "vetting_score", "write_report",
]
