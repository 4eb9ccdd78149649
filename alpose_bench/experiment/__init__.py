"""A whole experiment: plan the tasks from the spec (`runner`), run them on executors (`executors`), own the run's
folder and workers (`ownership`), and report where a run stands (`monitor`)."""
