// Loaded by every page while the server's auth is on: the header's token field (token.js).
import { setUpTokenField } from "./token.js";

setUpTokenField();
