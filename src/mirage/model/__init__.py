"""The paper's mathematical model: a per-token loss that is a power law in scale, and every metric
it implies (:mod:`mirage.model.power_law`). Pure functions; nothing here reads or writes files."""
