"""emergentlab: is a capability jump real, or an artefact of the metric — and when will the next model cross?"""

__version__ = "0.1.0"
