"""A small labelled retrieval set: 32 short documents on distinct topics and 24 questions, each
answered by exactly one document. The questions avoid the documents' wording where they can, so
retrieval has to go by meaning."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "photosynthesis": "Plants capture sunlight with chlorophyll and turn carbon dioxide and water into glucose, "
    "releasing oxygen as a by-product.",
    "volcanoes": "Molten rock called magma rises through the crust and erupts as lava, ash and gas from vents "
    "in the mountain.",
    "sourdough": "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria instead of "
    "commercial baker's yeast.",
    "black-holes": "A black hole is a region of spacetime where gravity is so strong that not even light can "
    "escape past the event horizon.",
    "tides": "Ocean tides rise and fall twice a day, pulled mainly by the gravity of the Moon and to a lesser "
    "extent the Sun.",
    "vaccines": "Vaccines train the immune system by exposing it to a harmless piece or weakened form of a "
    "pathogen, so antibodies are ready for a real infection.",
    "chess": "In chess, castling moves the king two squares toward a rook, and the rook jumps to the other "
    "side of the king.",
    "coffee": "Coffee beans are the roasted seeds of the Coffea plant; roasting develops the aroma and "
    "brown colour through the Maillard reaction.",
    "bees": "Honeybees communicate the direction and distance of flowers to their hive mates with a waggle dance.",
    "tcp": "TCP guarantees ordered, reliable delivery of bytes between two hosts using sequence numbers, "
    "acknowledgements and retransmission.",
    "git": "Git records snapshots of a project in commits; branches are movable pointers to commits and merges "
    "join divergent histories.",
    "marathon": "A marathon is a long-distance foot race of 42.195 kilometres, commemorating the run of a Greek "
    "messenger.",
    "penguins": "Emperor penguins breed during the Antarctic winter; the males incubate a single egg on their "
    "feet for about two months.",
    "inflation": "Inflation is the general rise in prices over time, which reduces the purchasing power of money; "
    "central banks raise interest rates to curb it.",
    "rainbows": "A rainbow appears when sunlight is refracted, reflected and dispersed inside raindrops, splitting "
    "white light into its colours.",
    "piano": "A piano makes sound when felt-covered hammers strike steel strings as the player presses the keys.",
    "glaciers": "Glaciers are slow rivers of ice that form where snowfall exceeds melting, carving valleys as "
    "they creep downhill.",
    "dna": "DNA is a double helix of nucleotides whose sequence of bases A, T, C and G encodes genetic instructions.",
    "espresso-machine": "An espresso machine forces hot water through finely ground coffee at about nine bars "
    "of pressure.",
    "roman-aqueducts": "Roman aqueducts carried water from distant springs into cities using a gentle, "
    "continuous downhill gradient and stone arches.",
    "solar-panels": "Solar panels use photovoltaic cells of silicon to convert sunlight directly into "
    "electric current.",
    "sleep": "During deep sleep the brain consolidates memories, and adults generally need seven to nine hours "
    "per night.",
    "origami": "Origami is the Japanese art of folding a single square sheet of paper into shapes such as cranes "
    "without cutting or glue.",
    "earthquakes": "Earthquakes happen when stress built up along a fault is suddenly released, sending seismic "
    "waves through the ground.",
    "compilers": "A compiler translates source code into machine code, passing through parsing, semantic "
    "analysis, optimisation and code generation.",
    "tea": "Green and black tea come from the same plant, Camellia sinensis; black tea leaves are oxidised "
    "before drying.",
    "bicycles": "Bicycle gears change the ratio between pedal turns and wheel turns, making hills easier to "
    "climb at a lower speed.",
    "mushrooms": "Mushrooms are the fruiting bodies of fungi, which spread through soil as a network of threads "
    "called mycelium.",
    "saturn": "Saturn, the sixth planet from the Sun, is a gas giant known for its bright rings made of ice "
    "and rock particles.",
    "password-hashing": "Passwords should be stored as slow salted hashes such as bcrypt or Argon2, never as "
    "plain text.",
    "olive-oil": "Extra virgin olive oil is pressed from olives without heat or chemical solvents and keeps a "
    "fruity, peppery taste.",
    "lighthouses": "Lighthouses guide ships at night with a rotating beam focused by a large Fresnel lens.",
}

# question -> the id of the one document that answers it
QUESTIONS: dict[str, str] = {
    "How do green plants make their food from light?": "photosynthesis",
    "What comes out of a mountain when it erupts?": "volcanoes",
    "Which bread rises using wild yeast rather than packaged yeast?": "sourdough",
    "Why can nothing leave the region beyond the event horizon?": "black-holes",
    "What makes the sea level go up and down every day?": "tides",
    "How does an injection prepare the body to fight a disease?": "vaccines",
    "Which chess move involves both the king and a rook?": "chess",
    "What gives roasted beans their smell and dark colour?": "coffee",
    "How do bees tell each other where the flowers are?": "bees",
    "Which network protocol resends lost packets and keeps bytes in order?": "tcp",
    "How does version control keep track of branches and merges?": "git",
    "How long is the classic long-distance running race?": "marathon",
    "Which birds keep their egg warm on their feet through the polar winter?": "penguins",
    "Why do prices keep going up and what do central banks do about it?": "inflation",
    "How are the colours in the sky after rain produced?": "rainbows",
    "What happens inside the instrument when a pianist presses a key?": "piano",
    "What are the frozen rivers that shape mountain valleys?": "glaciers",
    "How is hereditary information written in our cells?": "dna",
    "How much pressure is used to brew a shot of espresso?": "espresso-machine",
    "How did ancient Rome bring water into its cities?": "roman-aqueducts",
    "How do rooftop panels generate electricity?": "solar-panels",
    "How many hours of rest does a grown-up need each night?": "sleep",
    "What is the craft of making paper cranes without scissors?": "origami",
    "What causes the ground to shake along a fault line?": "earthquakes",
}
