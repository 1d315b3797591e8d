"""Care gaps across a patient's exams, treatment and fractures; treatment coverage."""
