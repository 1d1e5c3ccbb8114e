"""Synthesis recipes: the shipped ``<name>.yaml`` files in this folder, their parsers and checks.

``load_recipe(name_or_path, overrides)`` returns a validated, compiled ``Recipe``; ``list_recipes()`` the shipped
names. A new recipe is a YAML file (see docs/synthesis.md), passed to ``oc-synth generate`` by path.
"""

from oc_synth.synth.recipes.recipe import Recipe, RecipeError, RenderError, list_recipes, load_recipe

__all__ = ["Recipe", "RecipeError", "RenderError", "list_recipes", "load_recipe"]
