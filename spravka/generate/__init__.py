"""Text generation from templates, in the company's tone of voice, with checks against invention."""

from spravka.generate.service import TYPE, GenerationResult, Generator
from spravka.generate.template import describe_builtin, load_template, load_tone, template_names, tone_names

__all__ = ["TYPE", "GenerationResult", "Generator", "describe_builtin", "load_template", "load_tone",
           "template_names", "tone_names"]
