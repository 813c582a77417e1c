"""Qt-free engine: stimuli, accumulators, models, experiments, sessions."""
