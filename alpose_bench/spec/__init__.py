"""What an experiment asks for: the specification (`config`: spec, presets, protocol) and the names it may use
(`registry`: samplers and datasets installed as entry points, with the roles their classes declare)."""
