"""The streaming core: everything that turns a producer of events into bytes on a socket.

See README.md beside this file for the rule that keeps it free of Flask's request globals.
"""
