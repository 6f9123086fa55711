"""Importers: files made elsewhere (Neuronpedia, other annotation servers) into a project.

Every import is one transaction: a malformed record stops it with one line naming the file,
the record and the field, and nothing lands; with ``skip_bad`` the good records land and
the rejected ones are reported.  Re-importing the same file changes nothing.
"""
